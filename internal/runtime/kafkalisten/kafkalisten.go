// Package kafkalisten wraps the listener of franz-go's kfake broker so that
// librdkafka clients (kcat, confluent-kafka-go/python, ...) can authenticate
// to it with SASL.
//
// librdkafka decides whether a broker speaks SASL from the broker's
// ApiVersions response: it wants SaslHandshake (API key 17) advertised from
// version 0, which every Kafka since 0.10 does. kfake implements only v1 and
// advertises 1..1, so librdkafka gives up with "SASL Handshake not supported
// by broker". The connections of this package's listener note the
// correlation ids of the ApiVersions requests a client sends and rewrite the
// matching responses so that SaslHandshake is advertised from v0. The client
// then picks the highest version both sides know, v1, which kfake serves; a
// client that really sent v0 would still be refused by kfake.
//
// Nothing else changes: every byte of every other response, and every byte a
// client sends, passes through as it came. The wrapper reads plaintext Kafka
// framing, so it only helps below a plaintext listener: under kfake.TLS it
// sees ciphertext, recognizes no request and passes everything through.
package kafkalisten

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	saslHandshakeKey = 17
	apiVersionsKey   = 18

	// requestHeaderSize is what a request frame starts with: int32 size,
	// int16 API key, int16 API version, int32 correlation id. It is all
	// the watcher needs; the client id and body are skipped.
	requestHeaderSize = 12
	// responseHeaderSize is int32 size and int32 correlation id. An
	// ApiVersions response never carries header tags, even when its body
	// is flexible (v3+), so the body starts right after.
	responseHeaderSize = 8

	// maxRequestSize is Kafka's default socket.request.max.bytes. A larger
	// size means the stream is not Kafka framing (a TLS ClientHello reads
	// as ~369 MB), and the connection stops being watched.
	maxRequestSize = 100 << 20
	// maxApiVersionsResponse bounds what a connection holds back to
	// rewrite. Real ApiVersions responses are a few KiB; a larger one is
	// passed through as it is rather than buffered.
	maxApiVersionsResponse = 1 << 20
	// maxPending bounds the ApiVersions requests remembered per
	// connection; kfake answers requests one at a time, so more than a
	// handful means a client misbehaving, whose responses then pass
	// through untouched.
	maxPending = 64
)

// Listen announces on the local network address like net.Listen and wraps
// the listener with Wrap. Its signature is the one kfake.ListenFn takes, so
// that kfake.ListenFn(kafkalisten.Listen) makes a kfake cluster usable by
// librdkafka clients over SASL.
func Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("kafkalisten: %w", err)
	}
	return Wrap(ln), nil
}

// Wrap returns a listener whose accepted connections advertise SaslHandshake
// from version 0 in the ApiVersions responses the server writes to them, for
// servers like kfake that serve Kafka's protocol over ln but advertise the
// handshake from v1 only. Closing the returned listener closes ln.
func Wrap(ln net.Listener) net.Listener {
	return &listener{Listener: ln}
}

type listener struct {
	net.Listener
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newConn(c), nil
}

// conn is a server-side connection: what the server reads are the client's
// requests, what it writes are its responses. Embedding net.Conn (an
// interface) deliberately hides the optional fast paths of *net.TCPConn
// (ReadFrom, WriteTo), which would bypass Read and Write.
type conn struct {
	net.Conn

	// The locks keep each direction's parser in step with the bytes of
	// the stream even if a caller reads (or writes) from two goroutines.
	readMu  sync.Mutex
	watcher requestWatcher

	writeMu  sync.Mutex
	rewriter responseRewriter
}

func newConn(c net.Conn) *conn {
	p := &pending{versions: make(map[int32]int16)}
	return &conn{
		Conn:     c,
		watcher:  requestWatcher{pending: p},
		rewriter: responseRewriter{w: c, pending: p},
	}
}

func (c *conn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	n, err := c.Conn.Read(b)
	c.watcher.observe(b[:n])
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.rewriter.Write(b)
}

// pending holds the ApiVersions requests of one connection that have not
// been answered yet: correlation id to request version. It is shared by the
// two directions of the connection, hence the lock. A request is always
// recorded before the server can answer it, because the server has to read
// the request through the watcher first.
type pending struct {
	mu       sync.Mutex
	versions map[int32]int16
}

func (p *pending) add(corr int32, version int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.versions) < maxPending {
		p.versions[corr] = version
	}
}

// take returns and forgets the version of the ApiVersions request with
// correlation id corr, if there is one.
func (p *pending) take(corr int32) (version int16, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	version, ok = p.versions[corr]
	if ok {
		delete(p.versions, corr)
	}
	return version, ok
}

// requestWatcher follows the frames of the client-to-server stream without
// changing or holding any of it: it copies each frame's header (12 bytes)
// and skips the rest.
type requestWatcher struct {
	pending *pending
	header  [requestHeaderSize]byte
	filled  int   // bytes of header seen
	skip    int64 // bytes of the current frame still to skip
	lost    bool  // the stream is not Kafka framing; stop watching
}

func (w *requestWatcher) observe(b []byte) {
	for len(b) > 0 && !w.lost {
		if w.skip > 0 {
			k := min(int64(len(b)), w.skip)
			b = b[k:]
			w.skip -= k
			continue
		}
		k := copy(w.header[w.filled:], b)
		b = b[k:]
		w.filled += k
		if w.filled < requestHeaderSize {
			return
		}
		w.filled = 0
		size := int32(binary.BigEndian.Uint32(w.header[0:4]))
		if size < requestHeaderSize-4 || size > maxRequestSize {
			w.lost = true
			return
		}
		key := int16(binary.BigEndian.Uint16(w.header[4:6]))
		version := int16(binary.BigEndian.Uint16(w.header[6:8]))
		corr := int32(binary.BigEndian.Uint32(w.header[8:12]))
		if key == apiVersionsKey {
			w.pending.add(corr, version)
		}
		w.skip = int64(size) - (requestHeaderSize - 4)
	}
}

// responseRewriter follows the frames of the server-to-client stream. A frame
// answering a pending ApiVersions request is held back until complete, then
// written rewritten; any other frame is written through as it comes, straight
// from the caller's slice, so a server writing whole frames (kfake does) costs
// one write per frame as without the wrapper.
type responseRewriter struct {
	w       io.Writer
	pending *pending

	header [responseHeaderSize]byte
	filled int   // bytes of header seen
	pass   int64 // bytes of the current frame still to write through
	lost   bool  // the stream is not Kafka framing; write all through

	collecting bool   // frame holds an ApiVersions response being gathered
	frame      []byte // header and body of that response
	want       int    // its full length
	version    int16  // version of the request it answers
	err        error  // the first write error; the stream is broken after it
}

// Write implements io.Writer. Bytes held back (a partial header, an
// ApiVersions response not yet complete) count as written: they go out once
// the rest of their frame arrives.
func (r *responseRewriter) Write(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	// b[start:i] are bytes to write through that have not been written.
	start, i := 0, 0
	flush := func(end int) error {
		if start == end {
			return nil
		}
		n, err := r.w.Write(b[start:end])
		if err != nil {
			r.err = err
			start += n
			return err
		}
		start = end
		return nil
	}
	for i < len(b) {
		switch {
		case r.lost:
			i = len(b)
		case r.pass > 0:
			k := min(int64(len(b)-i), r.pass)
			i += int(k)
			r.pass -= k
		case r.collecting:
			k := min(len(b)-i, r.want-len(r.frame))
			r.frame = append(r.frame, b[i:i+k]...)
			i += k
			start = i
			if len(r.frame) < r.want {
				continue
			}
			r.collecting = false
			if _, err := r.w.Write(rewrite(r.frame, r.version, nil)); err != nil {
				r.err = err
				return i, err
			}
		default:
			held := r.filled // header bytes kept from earlier writes
			k := copy(r.header[r.filled:], b[i:])
			r.filled += k
			i += k
			if r.filled < responseHeaderSize {
				// The header runs past b: keep its start.
				if err := flush(i - k); err != nil {
					return start, err
				}
				start = i
				continue
			}
			r.filled = 0
			size := int32(binary.BigEndian.Uint32(r.header[0:4]))
			corr := int32(binary.BigEndian.Uint32(r.header[4:8]))
			if size < responseHeaderSize-4 {
				r.lost = true
			}
			version, isApiVersions := r.pending.take(corr)
			// An empty body cannot be an ApiVersions response; leaving
			// it out also means a collected frame always waits for at
			// least one more byte, which completes it.
			if !r.lost && isApiVersions && size > responseHeaderSize-4 && size <= maxApiVersionsResponse {
				if err := flush(i - k); err != nil {
					return start, err
				}
				start = i
				r.collecting = true
				r.frame = append(r.frame[:0], r.header[:]...)
				r.want = 4 + int(size)
				r.version = version
				continue
			}
			if held > 0 {
				// The header began in an earlier write, so nothing
				// of b precedes it: write its held part first.
				if _, err := r.w.Write(r.header[:held]); err != nil {
					r.err = err
					return 0, err
				}
			}
			if !r.lost {
				r.pass = int64(size) - (responseHeaderSize - 4)
			}
		}
	}
	if err := flush(i); err != nil {
		return start, err
	}
	return len(b), nil
}

// rewrite returns the ApiVersions response frame (header and body) with
// SaslHandshake advertised from version 0, or frame itself when there is
// nothing to change or the body is not understood.
func rewrite(frame []byte, version int16, keep func(key int16) bool) []byte {
	body := frame[responseHeaderSize:]
	// A broker answers a version it does not serve with a v0 body carrying
	// UNSUPPORTED_VERSION (KIP-511), whatever version was asked; the error
	// code leads the body in every version.
	if len(body) >= 2 && int16(binary.BigEndian.Uint16(body)) == kerr.UnsupportedVersion.Code {
		version = 0
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	if err := resp.ReadFrom(body); err != nil {
		return frame
	}
	// Only a body that re-encodes to exactly its own bytes is understood
	// well enough to edit: this rules out trailing bytes, versions newer
	// than kmsg knows, and tags kmsg would reorder.
	if !bytes.Equal(resp.AppendTo(nil), body) {
		return frame
	}
	changed := false
	if keep != nil {
		n := len(resp.ApiKeys)
		resp.ApiKeys = slices.DeleteFunc(resp.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return !keep(k.ApiKey) })
		changed = len(resp.ApiKeys) != n
	}
	for i := range resp.ApiKeys {
		if k := &resp.ApiKeys[i]; k.ApiKey == saslHandshakeKey && k.MinVersion > 0 {
			k.MinVersion = 0
			changed = true
		}
	}
	if !changed {
		return frame
	}
	out := resp.AppendTo(append(make([]byte, 0, len(frame)), frame[:responseHeaderSize]...))
	binary.BigEndian.PutUint32(out[0:4], uint32(len(out)-4))
	return out
}
