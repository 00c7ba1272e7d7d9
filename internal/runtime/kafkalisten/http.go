package kafkalisten

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// A cluster's endpoint also serves HTTP (Kafka REST v3) on the same port,
// as Confluent Cloud's clusters have one address for both: the first byte
// a client sends tells them apart. A Kafka request starts with its size
// (a zero byte for any request under 16 MiB), an HTTP one with a method
// name in upper-case letters.
func isHTTP(first byte) bool { return first >= 'A' && first <= 'Z' }

// peekedConn is a connection whose first bytes were read to tell HTTP
// from Kafka; they are read again from r, and then the connection is read
// directly: a handed-over client's bytes go through no buffer of the
// door's.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(b)
	}
	return c.Conn.Read(b)
}

// connListener hands connections the door accepted to an http.Server.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// serveHTTP hands c to the door's HTTP server, started on first use.
func (l *frontDoor) serveHTTP(c net.Conn) {
	l.httpOnce.Do(func() {
		var addr net.Addr = &net.TCPAddr{}
		if l.Listener != nil {
			addr = l.Addr()
		}
		ln := newConnListener(addr)
		l.httpLn.Store(ln)
		srv := &http.Server{Handler: l.cfg.REST, ReadHeaderTimeout: authTimeout, IdleTimeout: 2 * time.Minute}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
				l.cfg.Logger.Warn("kafka REST: server stopped", "err", err)
			}
		}()
	})
	ln := l.httpLn.Load()
	select {
	case ln.conns <- c:
	case <-ln.done:
		c.Close()
	}
}
