// Package podinit is the first process of every container svcnet starts: the node agent re-executes
// the svcnet binary as `svcnet pod-init` in fresh mount and UTS namespaces, and pod-init gives the
// container its view of the pod (hostname, /etc/resolv.conf, /etc/hosts, the pod's network
// namespace) before it replaces itself with the container's command. Go cannot run code between
// fork and exec, so this step has to be a process of its own.
package podinit

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Spec says what pod-init sets up; Args turns it into the command line Main parses.
type Spec struct {
	// Netns is the path of the network namespace to join ("" keeps the parent's, for hostNetwork).
	Netns    string
	Hostname string
	// Resolv and Hosts are files bind-mounted over /etc/resolv.conf and /etc/hosts ("" leaves them).
	Resolv string
	Hosts  string
	// Dir is the working directory ("" keeps the parent's).
	Dir  string
	Argv []string
}

// Args is the argument list after the binary's name.
func (s Spec) Args() []string {
	a := []string{"pod-init"}
	if s.Netns != "" {
		a = append(a, "--netns", s.Netns)
	}
	if s.Hostname != "" {
		a = append(a, "--hostname", s.Hostname)
	}
	if s.Resolv != "" {
		a = append(a, "--resolv", s.Resolv)
	}
	if s.Hosts != "" {
		a = append(a, "--hosts", s.Hosts)
	}
	if s.Dir != "" {
		a = append(a, "--dir", s.Dir)
	}
	return append(append(a, "--"), s.Argv...)
}

// SysProcAttr is what the parent must start pod-init with: private mount and UTS namespaces
// (so the bind mounts and hostname stay the container's), its own session (so signals to the
// agent do not reach it, and the agent can signal the whole process group).
func SysProcAttr(hostname bool) *syscall.SysProcAttr {
	flags := uintptr(unix.CLONE_NEWNS)
	if hostname {
		flags |= unix.CLONE_NEWUTS
	}
	return &syscall.SysProcAttr{Setsid: true, Unshareflags: flags}
}

// Main parses args (without the leading "pod-init"), prepares the namespaces and execs the
// command. It returns only on failure, with the exit status to use.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pod-init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s Spec
	fs.StringVar(&s.Netns, "netns", "", "network namespace path")
	fs.StringVar(&s.Hostname, "hostname", "", "hostname")
	fs.StringVar(&s.Resolv, "resolv", "", "file for /etc/resolv.conf")
	fs.StringVar(&s.Hosts, "hosts", "", "file for /etc/hosts")
	fs.StringVar(&s.Dir, "dir", "", "working directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s.Argv = fs.Args()
	if err := run(s); err != nil {
		fmt.Fprintln(stderr, "svcnet pod-init:", err)
		// 127 and 126 are what a shell reports for a missing or unusable command, and what a
		// container runtime reports too; anything else is a setup failure.
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		if errors.Is(err, os.ErrPermission) {
			return 126
		}
		return 128
	}
	return 0
}

func run(s Spec) error {
	if len(s.Argv) == 0 {
		return errors.New("no command")
	}
	// The exec below must happen on the thread that joined the network namespace: setns changes
	// only the calling thread, and execve keeps just that thread.
	runtime.LockOSThread()
	if s.Resolv != "" || s.Hosts != "" {
		// Go's Unshareflags already made the tree private; doing it again costs nothing and keeps
		// the mounts below from ever propagating to the host.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make mounts private: %w", err)
		}
		for _, m := range [][2]string{{s.Resolv, "/etc/resolv.conf"}, {s.Hosts, "/etc/hosts"}} {
			src, dst := m[0], m[1]
			if src == "" {
				continue
			}
			if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind %s over %s: %w", src, dst, err)
			}
		}
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", s.Hostname, err)
		}
	}
	if s.Netns != "" {
		fd, err := unix.Open(s.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open network namespace %s: %w", s.Netns, err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("join network namespace %s: %w", s.Netns, err)
		}
		unix.Close(fd)
	}
	if s.Dir != "" {
		if err := os.Chdir(s.Dir); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
	path := s.Argv[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			return err
		}
		path = p
	}
	return syscall.Exec(path, s.Argv, os.Environ())
}
