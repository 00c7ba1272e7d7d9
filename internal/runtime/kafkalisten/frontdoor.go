package kafkalisten

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms a front door accepts: PLAIN is what Confluent
// Cloud's clients are configured with, SCRAM-SHA-512 what the broker
// behind it checks.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Mechanisms lists the SASL mechanisms a front door accepts.
var Mechanisms = []string{MechanismPlain, MechanismScramSHA512}

const (
	saslAuthenticateKey = 36
	// maxAuthFrame bounds a frame before authentication: ApiVersions and
	// SASL requests are small, and an unauthenticated client must not make
	// the listener hold much.
	maxAuthFrame = 64 << 10
	// authTimeout bounds the TLS handshake and the SASL exchange, as a
	// broker's connections.max.idle.ms bounds an idle one.
	authTimeout = 30 * time.Second
	// authFailedMessage is what a client with a wrong key or secret is
	// told; it names neither, so a guesser learns nothing from it.
	authFailedMessage = "Authentication failed: invalid API key or secret"
)

// FrontDoorConfig configures a front door.
type FrontDoorConfig struct {
	// TLS is the server side of the TLS every client must speak (its
	// certificate chains to the installation's CA); nil serves
	// plaintext, for a development setup that asked for it.
	TLS *tls.Config
	// Tenants are the cluster's tenants: a key of a tenant with a prefix
	// (a shared cluster) is carried by the door, its names mapped; a key
	// of none is refused. Nil lets every key the broker knows through,
	// unmapped.
	Tenants *Tenants
	// REST, if set, serves the HTTP clients of the same endpoint (Kafka
	// REST v3), after the door's TLS; nil refuses them as Kafka clients
	// that sent garbage.
	REST http.Handler
	// Meter, if set, is told of the bytes each authenticated client sent
	// (in) and received (out), by its key's tenant: the network bytes a
	// cluster is billed for.
	Meter  func(tenant string, in, out int64)
	Logger *slog.Logger
}

// AdminClientID is the client id of the cluster's own admin client. The
// door of a shared cluster advertises only the request types it maps,
// except to a client with this id: ApiVersions comes before
// authentication, when the door cannot tell the admin from a tenant. A
// tenant that sends it is offered more, and refused the rest once signed
// in; nothing else depends on it.
const AdminClientID = "mothership-cluster-admin"

// FrontDoor returns a function with kfake.ListenFn's signature whose
// listener is the front door of a kfake broker that requires SASL with
// SCRAM-SHA-512: it terminates TLS and authenticates each client itself,
// with PLAIN or SCRAM-SHA-512, before the broker sees any of its requests.
//
// kfake, like Kafka, checks the credentials and the ACLs: a SCRAM exchange
// is relayed to it, and a PLAIN one is turned into a SCRAM exchange with the
// client's key and secret. What the front door adds is what clients need
// to see: a broker that refuses a credential closes the connection, which
// librdkafka reports as a transport failure and retries forever; the front
// door answers the client's SaslAuthenticate with SASL_AUTHENTICATION_FAILED
// and a message instead. Once a client is authenticated, the broker reads
// and writes its connection directly (see brokerConn).
func FrontDoor(cfg FrontDoorConfig) func(network, address string) (net.Listener, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// One budget for every broker of the cluster: a guesser does not get
	// a fresh one per broker.
	budget := &signInBudget{now: time.Now, failed: map[string]*failures{}}
	return func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("kafkalisten: %w", err)
		}
		return &frontDoor{Listener: ln, cfg: cfg, budget: budget}, nil
	}
}

type frontDoor struct {
	net.Listener
	cfg    FrontDoorConfig
	budget *signInBudget
	// proxy is set for a door apart from its brokers (Proxy): every
	// session is carried, for the brokers' addresses to be rewritten.
	proxy *proxyRoutes
	// httpLn hands HTTP clients to the REST server, started on first use.
	httpOnce sync.Once
	httpLn   atomic.Pointer[connListener]
}

// Close stops accepting, Kafka and HTTP clients alike.
func (l *frontDoor) Close() error {
	if ln := l.httpLn.Load(); ln != nil {
		ln.Close()
	}
	if l.Listener == nil {
		return nil
	}
	return l.Listener.Close()
}

// Failed sign-ins are bounded per key and client address, as the API
// bounds wrong secrets: past maxFailedSignIns in a signInWindow, the key is
// refused from that address, whatever the secret, until the window ends.
// A key's secret cannot be guessed through a cluster's endpoint faster
// than through the API.
const (
	maxFailedSignIns = 10
	signInWindow     = time.Minute
	// maxTrackedSignIns bounds the memory of failures: past it, windows
	// that ended are forgotten.
	maxTrackedSignIns = 100_000
)

type signInBudget struct {
	mu     sync.Mutex
	now    func() time.Time
	failed map[string]*failures // key + " " + client host
}

type failures struct {
	n     int
	since time.Time
}

// lockedOut says how long key stays refused from host, if it is.
func (b *signInBudget) lockedOut(key, host string) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.failed[key+" "+host]
	if !ok {
		return 0, false
	}
	left := f.since.Add(signInWindow).Sub(b.now())
	if left <= 0 {
		delete(b.failed, key+" "+host)
		return 0, false
	}
	return left, f.n >= maxFailedSignIns
}

// fail counts a failed sign-in of key from host.
func (b *signInBudget) fail(key, host string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if len(b.failed) >= maxTrackedSignIns {
		for k, f := range b.failed {
			if now.Sub(f.since) >= signInWindow {
				delete(b.failed, k)
			}
		}
	}
	f, ok := b.failed[key+" "+host]
	if !ok || now.Sub(f.since) >= signInWindow {
		f = &failures{since: now}
		b.failed[key+" "+host] = f
	}
	f.n++
}

// errLockedOut is a sign-in refused without checking its secret: its key
// failed too often from the client's address.
type errLockedOut struct{ wait time.Duration }

func (e errLockedOut) Error() string {
	return fmt.Sprintf("Authentication failed: too many failed sign-ins of this key from this address; retry in %s", e.wait.Round(time.Second))
}

func (l *frontDoor) Accept() (net.Conn, error) {
	client, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	broker, ours := net.Pipe()
	bc := &brokerConn{pipe: broker, local: client.LocalAddr(), remote: client.RemoteAddr(), handed: make(chan struct{})}
	go l.serve(client, ours, bc)
	return bc, nil
}

// brokerConn is the broker's end of a client's connection. Until the
// client is authenticated it is one end of an in-memory pipe, whose other
// end the front door holds; then the front door hands the client's
// connection over, and the broker reads and writes it directly: an
// authenticated client's bytes cost no copy and no goroutine of the door's.
// Its addresses are the client's, so that the broker names the client as
// it would without the door (in DescribeGroups, for instance).
type brokerConn struct {
	pipe          net.Conn
	local, remote net.Addr
	handed        chan struct{} // closed once direct is set
	direct        net.Conn
}

// handOver makes the broker read and write c from now on. The door calls
// it between two requests of the client, when the broker waits for the
// next one on the pipe; closing the door's end of the pipe then wakes it.
func (c *brokerConn) handOver(direct net.Conn) {
	c.direct = direct
	close(c.handed)
}

func (c *brokerConn) conn() net.Conn {
	select {
	case <-c.handed:
		return c.direct
	default:
		return nil
	}
}

func (c *brokerConn) Read(b []byte) (int, error) {
	if d := c.conn(); d != nil {
		return d.Read(b)
	}
	n, err := c.pipe.Read(b)
	if err != nil && n == 0 {
		if d := c.conn(); d != nil { // the pipe closed for the hand-over
			return d.Read(b)
		}
	}
	return n, err
}

func (c *brokerConn) Write(b []byte) (int, error) {
	if d := c.conn(); d != nil {
		return d.Write(b)
	}
	return c.pipe.Write(b)
}

func (c *brokerConn) Close() error {
	err := c.pipe.Close()
	if d := c.conn(); d != nil {
		err = d.Close()
	}
	return err
}

func (c *brokerConn) LocalAddr() net.Addr  { return c.local }
func (c *brokerConn) RemoteAddr() net.Addr { return c.remote }

func (c *brokerConn) SetDeadline(t time.Time) error {
	if d := c.conn(); d != nil {
		return d.SetDeadline(t)
	}
	return c.pipe.SetDeadline(t)
}

func (c *brokerConn) SetReadDeadline(t time.Time) error {
	if d := c.conn(); d != nil {
		return d.SetReadDeadline(t)
	}
	return c.pipe.SetReadDeadline(t)
}

func (c *brokerConn) SetWriteDeadline(t time.Time) error {
	if d := c.conn(); d != nil {
		return d.SetWriteDeadline(t)
	}
	return c.pipe.SetWriteDeadline(t)
}

// serve authenticates a client on the pipe to the broker (up), then hands
// the client's connection over to the broker; a client that does not
// authenticate is closed.
func (l *frontDoor) serve(client, up net.Conn, bc *brokerConn) {
	defer up.Close() // on a hand-over, this wakes the broker's read
	down := client
	deadline := time.Now().Add(authTimeout)
	client.SetDeadline(deadline)
	up.SetDeadline(deadline)
	if l.cfg.TLS != nil {
		tc := tls.Server(client, l.cfg.TLS)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.cfg.Logger.Debug("kafka client: TLS handshake failed", "remote", client.RemoteAddr().String(), "err", err)
			client.Close()
			return
		}
		down = tc
	}
	if l.cfg.REST != nil {
		r := bufio.NewReader(down)
		first, err := r.Peek(1)
		if err != nil {
			client.Close()
			return
		}
		down = &peekedConn{Conn: down, r: r}
		if isHTTP(first[0]) {
			down.SetDeadline(time.Time{})
			l.serveHTTP(down)
			return // up closes: the broker never hears of this client
		}
	}
	s := &session{down: down, up: up, log: l.cfg.Logger, remote: client.RemoteAddr().String(), budget: l.budget, tenants: l.cfg.Tenants,
		proxy: l.proxy != nil}
	s.host, _, _ = net.SplitHostPort(s.remote)
	if err := s.authenticate(); err != nil {
		l.cfg.Logger.Debug("kafka client: not authenticated", "remote", s.remote, "err", err)
		if s.tenant != nil {
			s.tenant.disconnect()
		}
		client.Close()
		return
	}
	client.SetDeadline(time.Time{})
	up.SetDeadline(time.Time{})
	if l.cfg.Meter != nil && s.owner != nil {
		down = &meteredConn{Conn: down, tenant: s.owner.tenant().ID, meter: l.cfg.Meter}
	}
	if s.tenant == nil && l.proxy == nil {
		bc.handOver(down)
		return
	}
	// A tenant of a shared cluster, or any client of a door apart from
	// its brokers: the door carries every request.
	c := carried{tenant: s.tenant, mapped: s.tenant != nil, routes: l.proxy}
	if s.tenant != nil {
		defer s.tenant.disconnect()
	} else {
		// A dedicated cluster's key, carried for the brokers' addresses
		// only: its brokers are its own, and hold it to its size.
		id := s.key
		if s.owner != nil {
			id = s.owner.tenant().ID
		}
		c.tenant = &tenantState{t: Tenant{ID: id}}
	}
	log := l.cfg.Logger.With("tenant", c.tenant.tenant().ID, "key", s.key, "remote", s.remote)
	if err := runTenant(down, up, c, log); err != nil {
		log.Debug("kafka client: session ended", "err", err)
	}
}

// errAuthFailed is a client's credential refused.
var errAuthFailed = errors.New("authentication failed")

// session is one client's conversation with the front door until it is
// authenticated: down is the client, up the broker.
type session struct {
	down, up net.Conn
	log      *slog.Logger
	remote   string
	mech     string // the mechanism the client's handshake chose
	key      string // the key (SASL user) the client signs in as, once known
	budget   *signInBudget
	host     string // the client's address, without its port
	// keyKnown is set once the broker answered the first SCRAM message:
	// the key exists, so a failure after it is a wrong secret. A key the
	// broker does not know is not counted against the budget: there is no
	// secret to guess, and a key just created is refused until it reaches
	// the cluster, which must not lock its owner out.
	keyKnown bool
	scram    int   // SCRAM messages relayed
	corr     int32 // correlation ids of the front door's own requests
	tenants  *Tenants
	proxy    bool // the door is apart from its brokers
	// tenant is the key's tenant once admitted, when its names are mapped
	// (a shared cluster); its connection is counted. owner is the key's
	// tenant whatever its cluster.
	tenant, owner *tenantState
}

// admit checks that the door knows the key it signs in as, and counts a
// connection of its tenant against the tenant's limit.
func (s *session) admit() error {
	st, ok := s.tenants.lookup(s.key)
	if !ok {
		return errors.New("no tenant holds the key")
	}
	s.owner = st
	if st == nil || st.tenant().Prefix == "" {
		return nil
	}
	if err := st.connect(); err != nil {
		return err
	}
	s.tenant = st
	return nil
}

// authenticate runs the client's requests until it is authenticated, or
// returns why not (the connection is then closed).
func (s *session) authenticate() error {
	for {
		frame, err := readFrame(s.down, maxAuthFrame)
		if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		h, err := parseRequestHeader(frame)
		if err != nil {
			return err
		}
		switch h.key {
		case apiVersionsKey:
			if err := s.apiVersions(frame, h); err != nil {
				return err
			}
		case saslHandshakeKey:
			if err := s.handshake(h); err != nil {
				return err
			}
		case saslAuthenticateKey:
			done, err := s.saslAuthenticate(frame, h)
			if err != nil || done {
				return err
			}
		default:
			// A broker closes a connection that sends anything else
			// before authenticating.
			return fmt.Errorf("request key %d before authentication", h.key)
		}
	}
}

// apiVersions relays the request and answers with the broker's versions,
// SaslHandshake advertised from v0 (see rewrite).
func (s *session) apiVersions(frame []byte, h requestHeader) error {
	if _, err := s.up.Write(frame); err != nil {
		return err
	}
	resp, err := readFrame(s.up, maxApiVersionsResponse)
	if err != nil {
		return fmt.Errorf("broker's ApiVersions: %w", err)
	}
	var keep func(int16) bool
	switch admin := h.clientID != nil && *h.clientID == AdminClientID; {
	case admin:
	case s.tenants.shared():
		keep = offeredToTenants
	case s.proxy:
		keep = offeredToDedicated
	}
	_, err = s.down.Write(rewrite(resp, h.version, keep))
	return err
}

// handshake answers the client's SaslHandshake itself, and starts a
// SCRAM-SHA-512 handshake with the broker for either mechanism.
func (s *session) handshake(h requestHeader) error {
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version = h.version
	if err := req.ReadFrom(h.body); err != nil {
		return fmt.Errorf("SaslHandshake: %w", err)
	}
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = Mechanisms
	switch {
	case h.version == 0:
		// v0 sends the SASL tokens unframed; every client since Kafka
		// 1.0 uses v1, which kfake alone serves.
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	case req.Mechanism != MechanismPlain && req.Mechanism != MechanismScramSHA512:
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	case s.mech != "":
		resp.ErrorCode = kerr.IllegalSaslState.Code
	default:
		up := kmsg.NewPtrSASLHandshakeRequest()
		up.Version = 1
		up.Mechanism = MechanismScramSHA512
		upResp := up.ResponseKind().(*kmsg.SASLHandshakeResponse)
		if err := s.roundTrip(up, upResp); err != nil {
			return fmt.Errorf("broker's SaslHandshake: %w", err)
		}
		if upResp.ErrorCode != 0 {
			resp.ErrorCode = upResp.ErrorCode
			break
		}
		s.mech = req.Mechanism
	}
	if err := writeResponse(s.down, h.corr, resp); err != nil {
		return err
	}
	if resp.ErrorCode == kerr.UnsupportedVersion.Code {
		return errors.New("SaslHandshake v0")
	}
	return nil
}

// saslAuthenticate answers one SaslAuthenticate; done reports the client
// authenticated.
func (s *session) saslAuthenticate(frame []byte, h requestHeader) (done bool, err error) {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version = h.version
	if err := req.ReadFrom(h.body); err != nil {
		return false, fmt.Errorf("SaslAuthenticate: %w", err)
	}
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	switch s.mech {
	case MechanismPlain:
		lifetime, err := s.plain(req.SASLAuthBytes)
		if err != nil {
			return false, s.refuse(h.corr, resp, err)
		}
		resp.SessionLifetimeMillis = lifetime
		return true, writeResponse(s.down, h.corr, resp)
	case MechanismScramSHA512:
		// Relayed as it is: the broker holds the salted credentials and
		// answers every step; a refused one closes its end.
		if s.scram == 0 {
			s.key = scramUser(req.SASLAuthBytes)
			if wait, locked := s.budget.lockedOut(s.key, s.host); locked {
				return false, s.refuse(h.corr, resp, errLockedOut{wait})
			}
			if err := s.admit(); err != nil {
				return false, s.refuse(h.corr, resp, err)
			}
		}
		if _, err := s.up.Write(frame); err != nil {
			return false, s.refuse(h.corr, resp, err)
		}
		answer, err := readFrame(s.up, maxAuthFrame)
		if err != nil {
			return false, s.refuse(h.corr, resp, err)
		}
		if err := parseResponse(answer, resp); err != nil {
			return false, fmt.Errorf("broker's SaslAuthenticate: %w", err)
		}
		s.scram++
		s.keyKnown = s.keyKnown || (s.scram == 1 && resp.ErrorCode == 0)
		if _, err := s.down.Write(answer); err != nil {
			return false, err
		}
		if resp.ErrorCode != 0 {
			return false, kerr.ErrorForCode(resp.ErrorCode)
		}
		return s.scram == 2, nil // client-first, then client-final
	default:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = ptr("SaslAuthenticate before SaslHandshake")
		return false, errors.Join(writeResponse(s.down, h.corr, resp), errors.New("SaslAuthenticate before SaslHandshake"))
	}
}

// refuse tells the client its credential was refused and ends the session.
func (s *session) refuse(corr int32, resp *kmsg.SASLAuthenticateResponse, cause error) error {
	resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
	resp.ErrorMessage = ptr(authFailedMessage)
	resp.SASLAuthBytes = nil
	var locked errLockedOut
	var full errTooManyConnections
	if errors.As(cause, &locked) {
		resp.ErrorMessage = ptr(locked.Error())
	} else if errors.As(cause, &full) {
		resp.ErrorMessage = ptr(full.Error())
	} else if s.keyKnown {
		s.budget.fail(s.key, s.host)
	}
	// The key is logged so that an operator sees which credential fails
	// (a revoked key still in an application's configuration); never the
	// secret.
	s.log.Info("kafka client: authentication failed", "remote", s.remote, "mechanism", s.mech, "key", s.key)
	return errors.Join(fmt.Errorf("%w: %w", errAuthFailed, cause), writeResponse(s.down, corr, resp))
}

// plain checks a PLAIN token ("authzid NUL user NUL password") by
// authenticating to the broker with SCRAM-SHA-512 as that user, and returns
// the session lifetime the broker gave.
func (s *session) plain(token []byte) (int64, error) {
	parts := bytes.Split(token, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || (len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1])) {
		return 0, errors.New("malformed PLAIN token")
	}
	user, pass := string(parts[1]), string(parts[2])
	s.key = user
	if wait, locked := s.budget.lockedOut(user, s.host); locked {
		return 0, errLockedOut{wait}
	}
	if err := s.admit(); err != nil {
		return 0, err
	}
	session, msg, err := scram.Auth{User: user, Pass: pass}.AsSha512Mechanism().Authenticate(context.Background(), "")
	if err != nil {
		return 0, err
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version = 1
		req.SASLAuthBytes = msg
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		if err := s.roundTrip(req, resp); err != nil {
			return 0, err
		}
		if resp.ErrorCode != 0 {
			return 0, kerr.ErrorForCode(resp.ErrorCode)
		}
		s.keyKnown = true // the broker answered: the key exists
		done, next, err := session.Challenge(resp.SASLAuthBytes)
		if err != nil {
			return 0, err
		}
		if done {
			return resp.SessionLifetimeMillis, nil
		}
		msg = next
	}
}

// scramUser reads the user of a SCRAM client-first message
// ("n,,n=USER,r=NONCE"), "" if there is none; "=2C" and "=3D" stand for
// "," and "=" (RFC 5802).
func scramUser(first []byte) string {
	for _, attr := range bytes.Split(first, []byte{','}) {
		if name, ok := bytes.CutPrefix(attr, []byte("n=")); ok {
			return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(string(name))
		}
	}
	return ""
}

// roundTrip sends the front door's own request to the broker and reads its
// response.
func (s *session) roundTrip(req kmsg.Request, resp kmsg.Response) error {
	s.corr++
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("mothership-front-door")).AppendRequest(nil, req, s.corr)
	if _, err := s.up.Write(frame); err != nil {
		return err
	}
	answer, err := readFrame(s.up, maxAuthFrame)
	if err != nil {
		return err
	}
	if corr := int32(binary.BigEndian.Uint32(answer[4:8])); corr != s.corr {
		return fmt.Errorf("response to correlation id %d, want %d", corr, s.corr)
	}
	return parseResponse(answer, resp)
}

// requestHeader is what the front door reads of a request frame.
type requestHeader struct {
	key, version int16
	corr         int32
	clientID     *string
	body         []byte
}

// parseRequestHeader reads a request frame's header: key, version,
// correlation id, client id and, for flexible requests, the header's tags.
func parseRequestHeader(frame []byte) (requestHeader, error) {
	if len(frame) < requestHeaderSize+2 {
		return requestHeader{}, errors.New("request frame too short")
	}
	h := requestHeader{
		key:     int16(binary.BigEndian.Uint16(frame[4:6])),
		version: int16(binary.BigEndian.Uint16(frame[6:8])),
		corr:    int32(binary.BigEndian.Uint32(frame[8:12])),
	}
	r := kbin.Reader{Src: frame[requestHeaderSize:]}
	h.clientID = r.NullableString()
	if req := kmsg.RequestForKey(h.key); req != nil {
		req.SetVersion(h.version)
		if req.IsFlexible() {
			kmsg.SkipTags(&r)
		}
	}
	if !r.Ok() {
		return requestHeader{}, errors.New("request header cut short")
	}
	h.body = r.Src
	return h, nil
}

// parseResponse decodes a response frame into resp, whose version is set.
func parseResponse(frame []byte, resp kmsg.Response) error {
	body := frame[responseHeaderSize:]
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		r := kbin.Reader{Src: body}
		kmsg.SkipTags(&r)
		body = r.Src
	}
	return resp.ReadFrom(body)
}

// writeResponse frames resp (whose version is the request's) for corr.
func writeResponse(w io.Writer, corr int32, resp kmsg.Response) error {
	b := make([]byte, responseHeaderSize, 128)
	binary.BigEndian.PutUint32(b[4:8], uint32(corr))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		b = append(b, 0) // no header tags
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b[0:4], uint32(len(b)-4))
	_, err := w.Write(b)
	return err
}

// readFrame reads one size-prefixed frame, the size included.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < responseHeaderSize-4 || int(n) > max {
		return nil, fmt.Errorf("frame of %d bytes: not Kafka's protocol, or too large before authentication", n)
	}
	frame := make([]byte, 4+int(n))
	copy(frame, size[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

func ptr[T any](v T) *T { return &v }

// meteredConn counts the bytes a client sends and receives for its
// tenant.
type meteredConn struct {
	net.Conn
	tenant string
	meter  func(tenant string, in, out int64)
}

func (c *meteredConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.meter(c.tenant, int64(n), 0)
	}
	return n, err
}

func (c *meteredConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.meter(c.tenant, 0, int64(n))
	}
	return n, err
}
