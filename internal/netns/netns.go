// Package netns creates, enters and removes the named network namespaces svcnet runs nodes, pods
// and the outside client in. Named namespaces are bind mounts under /run/netns, as `ip netns`
// makes them, so `ip netns list` and `ip netns exec` see them too.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces live.
const Dir = "/run/netns"

// Path is the bind mount of a named namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

// Exists reports whether the named namespace is mounted.
func Exists(name string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(Path(name), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// Ensure creates the named namespace unless it exists, without changing the caller's namespace.
func Ensure(name string) error {
	if Exists(name) {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		return fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	ns, err := vnetns.NewNamed(name)
	if err != nil {
		_ = vnetns.Set(orig)
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	ns.Close()
	if err := vnetns.Set(orig); err != nil {
		// This thread is now in the wrong namespace: keep it locked so it dies with the goroutine
		// instead of running other goroutines there.
		runtime.LockOSThread()
		return fmt.Errorf("return to the original network namespace: %w", err)
	}
	return nil
}

// Do runs fn on a thread inside the named namespace. Sockets fn opens stay in that namespace; fn
// must not start goroutines that expect to inherit it.
func Do(name string, fn func() error) error { return DoPath(Path(name), fn) }

// Handle opens the named namespace for netlink.NewHandleAt and the like.
func Handle(name string) (vnetns.NsHandle, error) {
	h, err := vnetns.GetFromPath(Path(name))
	if err != nil {
		return 0, fmt.Errorf("open network namespace %s: %w", name, err)
	}
	return h, nil
}

// List returns the names of the mounted namespaces that match.
func List(match func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if match(e.Name()) && Exists(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Remove kills every process inside the named namespace (SIGTERM, then SIGKILL after grace), and
// unmounts and removes it. The kernel frees the namespace, and every link in it, once the last
// process has gone; veth peers in other namespaces go with it.
func Remove(name string, grace time.Duration) error {
	if !Exists(name) {
		_ = os.Remove(Path(name))
		return nil
	}
	if err := KillProcesses(name, grace); err != nil {
		return err
	}
	if err := unix.Unmount(Path(name), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", Path(name), err)
	}
	if err := os.Remove(Path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", Path(name), err)
	}
	return nil
}

// KillProcesses ends the processes whose network namespace is the named one: the processes svcnet
// started there (agents, containers, exec'd commands). Only those: membership is checked by the
// namespace's inode, not by name.
func KillProcesses(name string, grace time.Duration) error {
	pids, err := Processes(name)
	if err != nil || len(pids) == 0 {
		return err
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if pids, _ = Processes(name); len(pids) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for i := 0; i < 100; i++ {
		if pids, _ = Processes(name); len(pids) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("processes %v in network namespace %s did not exit after SIGKILL", pids, name)
}

// Processes lists the ids of the processes inside the named namespace (zombies excluded).
func Processes(name string) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(Path(name), &want); err != nil {
		return nil, fmt.Errorf("stat %s: %w", Path(name), err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue
		}
		if st.Ino != want.Ino || st.Dev != want.Dev {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		out = append(out, pid)
	}
	return out, nil
}

// Sysctl writes a value under /proc/sys for the namespace the calling thread is in.
func Sysctl(key, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// DoPath is Do for a namespace given by path (/proc/PID/ns/net, or a bind mount).
func DoPath(path string, fn func() error) error {
	target, err := vnetns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := vnetns.Set(target); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	ferr := fn()
	if err := vnetns.Set(orig); err != nil {
		runtime.LockOSThread()
		return errors.Join(ferr, fmt.Errorf("return to the original network namespace: %w", err))
	}
	return ferr
}
