package cluster

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
)

// forwardUnix accepts connections on a unix socket and splices each to the API server's TCP
// address. Node agents run inside their nodes' network namespaces, where the host's loopback is
// out of reach; a socket in the filesystem reaches across namespaces without giving the cluster
// networks any route to the host.
func forwardUnix(ctx context.Context, path, target string) (func(), error) {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	_ = os.Chmod(path, 0o600)
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				var d net.Dialer
				up, err := d.DialContext(ctx, "tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
				select {
				case <-done:
					<-done
				case <-ctx.Done():
				}
			}()
		}
	}()
	return func() { l.Close(); _ = os.Remove(path) }, nil
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
