package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/svcnet/svcnet/internal/podinit"
)

// Restart back-off, as the kubelet's: 10 s doubling to 5 minutes, forgotten after 10 minutes of
// running.
const (
	backoffBase  = 10 * time.Second
	backoffMax   = 5 * time.Minute
	backoffReset = 10 * time.Minute
)

// podEvent hands the latest version of a pod to its worker, starting one for a new pod.
func (a *Agent) podEvent(o any, deleted bool) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	w := a.workers[pod.UID]
	if w == nil {
		if deleted {
			a.mu.Unlock()
			return
		}
		w = &podWorker{a: a, uid: pod.UID, updates: make(chan *corev1.Pod, 1), poke: make(chan struct{}, 1), ctrs: map[string]*ctr{}}
		if sb := a.adopted[pod.UID]; sb != nil {
			w.sb = sb
			delete(a.adopted, pod.UID)
		}
		a.workers[pod.UID] = w
		go w.run()
	}
	a.mu.Unlock()
	if deleted {
		w.gone()
		return
	}
	w.update(pod)
}

// adoptSandboxes reads the sandboxes a previous agent left: those of pods still bound here are
// kept (with their running processes) for the pods' workers; the others are removed.
func (a *Agent) adoptSandboxes() error {
	sbs, err := loadSandboxes(a.cfg.StateDir)
	if err != nil {
		return err
	}
	for _, sb := range sbs {
		pod, err := a.findPod(types.UID(sb.UID))
		if err != nil || pod == nil {
			slog.Info("removing sandbox of a pod no longer here", "pod", sb.Namespace+"/"+sb.Name)
			a.destroySandbox(sb)
			continue
		}
		if sb.Netns != "" {
			if err := a.pool.Reserve(sb.IP, sb.UID); err != nil {
				slog.Warn("sandbox address conflict; recreating the pod's sandbox", "pod", sb.Namespace+"/"+sb.Name, "err", err)
				a.destroySandbox(sb)
				continue
			}
		}
		a.adopted[types.UID(sb.UID)] = sb
	}
	return nil
}

func (a *Agent) findPod(uid types.UID) (*corev1.Pod, error) {
	pods, err := a.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if p.UID == uid {
			return p, nil
		}
	}
	return nil, nil
}

func (a *Agent) destroySandbox(sb *sandbox) {
	for _, p := range sb.Procs {
		if procAlive(p) {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	}
	if err := teardownPodNetwork(sb); err != nil {
		slog.Warn("sandbox teardown failed", "pod", sb.Namespace+"/"+sb.Name, "err", err)
	}
	a.pool.Release(sb.UID)
	_ = os.RemoveAll(sb.dir(a.cfg.StateDir))
}

// ctr is one container's runtime state.
type ctr struct {
	spec corev1.Container

	pid       int
	startTick int64
	running   bool
	startedAt time.Time
	restarts  int32
	exited    chan struct{}
	// term is the state after the process ended; lastTerm the one before the current run.
	term, lastTerm *corev1.ContainerStateTerminated
	waiting        string
	waitingMsg     string
	nextStart      time.Time
	backoff        time.Duration

	ready, started bool
	probes         context.CancelFunc
	killing        bool
}

// podWorker owns one pod: its sandbox, containers, probes and status. Everything it holds is
// touched only by its own goroutine, except what the locked mu guards.
type podWorker struct {
	a       *Agent
	uid     types.UID
	updates chan *corev1.Pod
	poke    chan struct{}

	mu      sync.Mutex // guards ctrs' probe and exit fields, written by other goroutines
	pod     *corev1.Pod
	sb      *sandbox
	ctrs    map[string]*ctr
	removed bool
	retry   time.Time
}

func (w *podWorker) update(p *corev1.Pod) {
	for {
		select {
		case w.updates <- p:
			return
		default:
		}
		select {
		case <-w.updates:
		default:
		}
	}
}

func (w *podWorker) gone() {
	w.mu.Lock()
	w.removed = true
	w.mu.Unlock()
	w.wake()
}

func (w *podWorker) wake() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

func (w *podWorker) run() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case p := <-w.updates:
			// An event older than the pod the worker already holds (its own status write's
			// response) would only cause a conflicting write.
			if w.pod == nil || !olderThan(p, w.pod) {
				w.pod = p
			}
		case <-w.poke:
		case <-tick.C:
		}
		if w.pod == nil {
			continue
		}
		if done := w.sync(); done {
			w.a.mu.Lock()
			delete(w.a.workers, w.uid)
			w.a.mu.Unlock()
			return
		}
	}
}

func (w *podWorker) key() string { return w.pod.Namespace + "/" + w.pod.Name }

// sync moves the pod one step towards what its spec and deletion state ask for; it reports
// whether the worker is finished.
func (w *podWorker) sync() bool {
	w.mu.Lock()
	removed := w.removed
	w.mu.Unlock()
	pod := w.pod
	if removed || pod.DeletionTimestamp != nil {
		return w.terminate(removed)
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		w.stopAll(0)
		return false
	}
	if err := w.ensureSandbox(); err != nil {
		slog.Warn("pod sandbox failed", "pod", w.key(), "err", err)
		w.a.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		w.writeStatus()
		return false
	}
	for i := range pod.Spec.Containers {
		w.ensureContainer(&pod.Spec.Containers[i])
	}
	w.writeStatus()
	return false
}

func (w *podWorker) ensureSandbox() error {
	if w.sb != nil {
		return nil
	}
	pod := w.pod
	a := w.a
	sb := &sandbox{UID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name, Hostname: podHostname(pod)}
	if err := os.MkdirAll(sb.dir(a.cfg.StateDir), 0o700); err != nil {
		return err
	}
	if pod.Spec.HostNetwork {
		sb.IP = a.cfg.NodeIP
		sb.Hostname = ""
	} else {
		ip, err := a.pool.Allocate(sb.UID)
		if err != nil {
			return err
		}
		sb.IP = ip
		sb.Netns = podNetnsName(a.cfg.PodNetnsPrefix, pod.Namespace, pod.Name, string(pod.UID))
		sb.HostVeth = hostVethName(sb.UID)
	}
	// The record goes to disk before anything is made, so that a crash leaves nothing the next
	// agent cannot find and remove.
	if rc := resolvConf(pod, a.cfg.ClusterDNS, a.cfg.ClusterDomain, a.cfg.HostResolv); rc != "" {
		sb.Resolv = sb.dir(a.cfg.StateDir) + "/resolv.conf"
		if err := os.WriteFile(sb.Resolv, []byte(rc), 0o644); err != nil {
			return err
		}
	}
	if !pod.Spec.HostNetwork {
		sb.Hosts = sb.dir(a.cfg.StateDir) + "/hosts"
		if err := os.WriteFile(sb.Hosts, []byte(hostsFile(pod, sb.IP, a.cfg.ClusterDomain)), 0o644); err != nil {
			return err
		}
	}
	if err := sb.save(a.cfg.StateDir); err != nil {
		return err
	}
	if !pod.Spec.HostNetwork {
		if err := setupPodNetwork(sb, a.bridge, a.pool.Gateway(), a.cfg.PodCIDR.Bits()); err != nil {
			a.destroySandbox(sb)
			return err
		}
	}
	w.sb = sb
	return nil
}

func (w *podWorker) spec(c *corev1.Container) podinit.Spec {
	return podinit.Spec{Netns: netnsPathOf(w.sb), Hostname: w.sb.Hostname, Resolv: w.sb.Resolv, Hosts: w.sb.Hosts, Dir: c.WorkingDir}
}

func netnsPathOf(sb *sandbox) string {
	if sb.Netns == "" {
		return ""
	}
	return "/run/netns/" + sb.Netns
}

// ensureContainer starts the container when it should run and is not running: first start, or a
// restart its policy allows once its back-off has passed. An adopted process is watched instead.
func (w *podWorker) ensureContainer(spec *corev1.Container) {
	w.mu.Lock()
	c := w.ctrs[spec.Name]
	if c == nil {
		c = &ctr{spec: *spec}
		if p, ok := w.sb.Procs[spec.Name]; ok {
			c.restarts = p.Restarts
			if procAlive(p) {
				c.pid, c.startTick, c.running = p.PID, p.StartTick, true
				c.startedAt = time.Unix(0, p.StartedAt)
				c.exited = make(chan struct{})
				w.ctrs[spec.Name] = c
				w.mu.Unlock()
				go w.watchAdopted(c, p.PID)
				w.startProbes(c)
				return
			}
		}
		w.ctrs[spec.Name] = c
	}
	if c.running || c.killing {
		w.mu.Unlock()
		return
	}
	if c.term != nil {
		policy := w.pod.Spec.RestartPolicy
		if policy == corev1.RestartPolicyNever || (policy == corev1.RestartPolicyOnFailure && c.term.ExitCode == 0) {
			w.mu.Unlock()
			return
		}
		if time.Now().Before(c.nextStart) {
			if c.waiting != "CrashLoopBackOff" {
				c.waiting = "CrashLoopBackOff"
				c.waitingMsg = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
					c.backoff, spec.Name, w.pod.Name, w.pod.Namespace, w.pod.UID)
				w.a.recorder.Eventf(w.pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)",
					spec.Name, w.pod.Name, w.pod.Namespace, w.pod.UID)
			}
			w.mu.Unlock()
			return
		}
	}
	w.mu.Unlock()
	if err := w.start(c); err != nil {
		slog.Info("container did not start", "pod", w.key(), "container", spec.Name, "err", err)
	}
}

func (w *podWorker) start(c *ctr) error {
	a := w.a
	pod := w.pod
	facts := podFacts{PodIP: w.sb.IP, HostIP: a.cfg.NodeIP}
	if svcs, err := a.services.Services(pod.Namespace).List(labels.Everything()); err == nil {
		facts.Services = svcs
	}
	if k, err := a.services.Services(metav1.NamespaceDefault).Get("kubernetes"); err == nil {
		facts.MasterServices = []*corev1.Service{k}
	}
	env, vars, err := containerEnv(pod, &c.spec, facts)
	if err != nil {
		w.setWaiting(c, "CreateContainerConfigError", err.Error())
		a.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return err
	}
	argv, reason, err := containerArgv(&c.spec, a.cfg.Self, vars)
	if err != nil {
		w.setWaiting(c, reason, err.Error())
		a.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return err
	}
	logf, err := os.OpenFile(LogPath(a.cfg.StateDir, string(pod.UID), c.spec.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	spec := w.spec(&c.spec)
	spec.Argv = argv
	cmd := exec.Command(a.cfg.Self, spec.Args()...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = podinit.SysProcAttr(w.sb.Netns != "")
	if err := cmd.Start(); err != nil {
		w.setWaiting(c, "StartError", err.Error())
		return err
	}
	now := time.Now()
	w.mu.Lock()
	if c.term != nil {
		c.lastTerm = c.term
		c.restarts++
	}
	c.term, c.waiting, c.waitingMsg = nil, "", ""
	c.pid, c.startTick, c.running, c.startedAt = cmd.Process.Pid, procStartTick(cmd.Process.Pid), true, now
	c.exited = make(chan struct{})
	c.ready, c.started = false, false
	if w.sb.Procs == nil {
		w.sb.Procs = map[string]proc{}
	}
	w.sb.Procs[c.spec.Name] = proc{PID: c.pid, StartTick: c.startTick, StartedAt: now.UnixNano(), Restarts: c.restarts}
	_ = w.sb.save(a.cfg.StateDir)
	exited := c.exited
	w.mu.Unlock()
	a.recorder.Eventf(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.spec.Name)
	go func() {
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
		w.exited(c, exited, code)
	}()
	w.startProbes(c)
	return nil
}

func (w *podWorker) setWaiting(c *ctr, reason, msg string) {
	w.mu.Lock()
	c.waiting, c.waitingMsg = reason, msg
	w.mu.Unlock()
}

// exited records a container's end and schedules its restart.
func (w *podWorker) exited(c *ctr, ch chan struct{}, code int) {
	w.mu.Lock()
	if c.exited != ch {
		w.mu.Unlock()
		return
	}
	now := time.Now()
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	c.term = &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason,
		StartedAt: metav1.NewTime(c.startedAt), FinishedAt: metav1.NewTime(now), ContainerID: containerID(c)}
	c.running, c.ready, c.started, c.killing = false, false, false, false
	if c.probes != nil {
		c.probes()
		c.probes = nil
	}
	if now.Sub(c.startedAt) > backoffReset {
		c.backoff = 0
	}
	if c.backoff == 0 {
		c.backoff = backoffBase
	} else {
		c.backoff = min(2*c.backoff, backoffMax)
	}
	// The first restart waits for nothing, as the kubelet's does.
	if c.restarts == 0 {
		c.nextStart = now
	} else {
		c.nextStart = now.Add(c.backoff)
	}
	close(ch)
	w.mu.Unlock()
	w.wake()
}

func containerID(c *ctr) string { return "svcnet://" + strconv.Itoa(c.pid) }

// watchAdopted waits for a process the agent did not start (it is not our child) to exit.
func (w *podWorker) watchAdopted(c *ctr, pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				break
			}
		}
		unix.Close(fd)
	} else {
		for procAlive(proc{PID: pid, StartTick: c.startTick}) {
			time.Sleep(500 * time.Millisecond)
		}
	}
	w.mu.Lock()
	ch := c.exited
	w.mu.Unlock()
	// Not our child: its exit status is the init process's to collect, not ours.
	w.exited(c, ch, 0)
}

// stopAll ends every container: SIGTERM to each process group, SIGKILL after grace.
func (w *podWorker) stopAll(grace time.Duration) {
	var waits []chan struct{}
	w.mu.Lock()
	for _, c := range w.ctrs {
		if !c.running {
			continue
		}
		if c.probes != nil {
			c.probes()
			c.probes = nil
		}
		if !c.killing {
			c.killing = true
			w.a.recorder.Eventf(w.pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.spec.Name)
		}
		_ = syscall.Kill(-c.pid, syscall.SIGTERM)
		waits = append(waits, c.exited)
	}
	pids := map[int]bool{}
	for _, c := range w.ctrs {
		if c.running {
			pids[c.pid] = true
		}
	}
	w.mu.Unlock()
	deadline := time.After(grace)
	for _, ch := range waits {
		select {
		case <-ch:
		case <-deadline:
			for pid := range pids {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
			<-ch
		}
	}
}

// terminate stops a pod being deleted: containers get the grace period, then the sandbox goes and
// the pod object is removed for good (with its UID as a precondition, so that a new pod of the
// same name is never deleted by mistake).
func (w *podWorker) terminate(removed bool) bool {
	pod := w.pod
	grace := time.Duration(0)
	if !removed {
		g := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if pod.DeletionGracePeriodSeconds != nil {
			g = *pod.DeletionGracePeriodSeconds
		} else if pod.Spec.TerminationGracePeriodSeconds != nil {
			g = *pod.Spec.TerminationGracePeriodSeconds
		}
		grace = time.Duration(g) * time.Second
		if pod.DeletionTimestamp != nil {
			// The grace runs from the deletion, not from when this agent noticed it.
			if left := time.Until(pod.DeletionTimestamp.Time); left < grace && left >= 0 {
				grace = left
			}
		}
	}
	w.stopAll(grace)
	if !removed {
		w.writeStatus()
	}
	if w.sb != nil {
		w.a.destroySandbox(w.sb)
		w.sb = nil
	}
	if !removed {
		err := w.a.client.CoreV1().Pods(pod.Namespace).Delete(context.Background(), pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(pod.UID)),
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			slog.Warn("final pod delete failed; retrying", "pod", w.key(), "err", err)
			return false
		}
	}
	return true
}

// procAlive reports whether pid is still the process that was recorded.
func procAlive(p proc) bool {
	if p.PID <= 0 {
		return false
	}
	t := procStartTick(p.PID)
	return t != 0 && t == p.StartTick
}

// procStartTick is the process's start time in clock ticks since boot (field 22 of
// /proc/PID/stat), which together with the pid names one process for good.
func procStartTick(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); a zombie has ended.
	if len(f) < 20 || f[0] == "Z" {
		return 0
	}
	v, _ := strconv.ParseInt(f[19], 10, 64)
	return v
}

// execIn runs argv in the container's namespaces (an exec probe), returning its output.
func (w *podWorker) execIn(ctx context.Context, c *corev1.Container, argv []string) ([]byte, error) {
	spec := w.spec(c)
	spec.Argv = argv
	cmd := exec.CommandContext(ctx, w.a.cfg.Self, spec.Args()...)
	cmd.SysProcAttr = podinit.SysProcAttr(w.sb.Netns != "")
	cmd.SysProcAttr.Setsid = false
	return cmd.CombinedOutput()
}

// startProbes runs the container's startup, readiness and liveness probes until it exits.
func (w *podWorker) startProbes(c *ctr) {
	ctx, cancel := context.WithCancel(context.Background())
	w.mu.Lock()
	c.probes = cancel
	spec := c.spec
	if spec.StartupProbe == nil {
		c.started = true
	}
	if spec.ReadinessProbe == nil {
		c.ready = c.started
	}
	w.mu.Unlock()
	podIP := w.sb.IP
	pr := newProber(func(ctx context.Context, argv []string) ([]byte, error) { return w.execIn(ctx, &spec, argv) })
	loop := func(p *corev1.Probe, kind string, gate bool, onChange func(ok bool)) {
		if p == nil {
			return
		}
		go func() {
			var st probeState
			if d := time.Duration(p.InitialDelaySeconds) * time.Second; d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			period := time.Duration(p.PeriodSeconds) * time.Second
			if period <= 0 {
				period = 10 * time.Second
			}
			for {
				w.mu.Lock()
				started := c.started
				w.mu.Unlock()
				if !gate || started {
					r := pr.run(ctx, p, &spec, podIP)
					if ctx.Err() != nil {
						return
					}
					if !r.ok {
						w.a.recorder.Eventf(w.pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, r.message)
					}
					if st.observe(p, r.ok) {
						onChange(st.result)
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(period):
				}
			}
		}()
	}
	loop(spec.StartupProbe, "Startup", false, func(ok bool) {
		w.mu.Lock()
		if ok {
			c.started = true
			if spec.ReadinessProbe == nil {
				c.ready = true
			}
		}
		w.mu.Unlock()
		if !ok {
			w.kill(c, "Container "+spec.Name+" failed startup probe, will be restarted")
		}
		w.wake()
	})
	loop(spec.ReadinessProbe, "Readiness", true, func(ok bool) {
		w.mu.Lock()
		c.ready = ok
		w.mu.Unlock()
		w.wake()
	})
	loop(spec.LivenessProbe, "Liveness", true, func(ok bool) {
		if !ok {
			w.kill(c, "Container "+spec.Name+" failed liveness probe, will be restarted")
		}
	})
}

// kill stops one container so that its restart policy restarts it.
func (w *podWorker) kill(c *ctr, why string) {
	w.mu.Lock()
	if !c.running || c.killing {
		w.mu.Unlock()
		return
	}
	c.killing = true
	pid, ch := c.pid, c.exited
	w.mu.Unlock()
	w.a.recorder.Eventf(w.pod, corev1.EventTypeNormal, "Killing", "%s", why)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	grace := 30 * time.Second
	if g := w.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	go func() {
		select {
		case <-ch:
		case <-time.After(grace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}()
}

// writeStatus posts the pod's status when it differs from what was last written.
func (w *podWorker) writeStatus() {
	if time.Now().Before(w.retry) {
		return
	}
	w.mu.Lock()
	snap := make(map[string]ctrSnapshot, len(w.ctrs))
	for name, c := range w.ctrs {
		snap[name] = c.snapshot()
	}
	w.mu.Unlock()
	var ip netip.Addr
	if w.sb != nil {
		ip = w.sb.IP
	}
	cur := w.pod
	status := podStatus(cur, ip, w.a.cfg.NodeIP, snap, time.Now())
	// Compared with what the API server holds, not with what this agent last wrote: another
	// writer (the node lifecycle controller marking pods of an unreachable node) may have changed
	// it since.
	if statusEqual(&cur.Status, &status) {
		return
	}
	p := cur.DeepCopy()
	p.Status = status
	out, err := w.a.client.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			slog.Warn("pod status update failed", "pod", w.key(), "err", err)
		}
		// A conflict means a newer pod is on its way from the informer: try again after it. Other
		// failures wait longer, so a rejected status does not become a request storm.
		delay := 200 * time.Millisecond
		if !apierrors.IsConflict(err) {
			delay = 5 * time.Second
		}
		w.retry = time.Now().Add(delay)
		go func() { time.Sleep(delay + 50*time.Millisecond); w.wake() }()
		return
	}
	w.pod = out
}

// olderThan compares resourceVersions, which are etcd revisions here and in kube.
func olderThan(a, b *corev1.Pod) bool {
	ra, err1 := strconv.ParseUint(a.ResourceVersion, 10, 64)
	rb, err2 := strconv.ParseUint(b.ResourceVersion, 10, 64)
	return err1 == nil && err2 == nil && ra < rb
}
