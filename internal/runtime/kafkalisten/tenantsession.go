package kafkalisten

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// defaultPartitions is what a topic created without a partition count
// gets on a shared cluster: Confluent Cloud's default. The door sets it
// itself so that it knows what the creation counts against the limits.
const defaultPartitions = 6

// maxInflight bounds the requests of one client the door holds answers
// for; a client that sends more waits, as it would for a broker's
// queued.max.requests.
const maxInflight = 256

// tenantSession carries an authenticated tenant's connection to the
// broker: every request is decoded, its names mapped to the broker's
// (mapper), checked against the tenant's limits and re-encoded; every
// response is mapped back. Requests pipeline: the reader goroutine sends
// them on, the writer answers them in order, as the broker does.
type tenantSession struct {
	t        *tenantState
	c        carried
	m        mapper
	down, up net.Conn
	log      *slog.Logger
	now      func() time.Time

	queue chan *inflight
	dead  chan struct{} // closed when the writer stops
	// mutedUntil (unix nanoseconds) is when the reader may read the
	// client's next request: a client past its byte rate is not read
	// from until its throttle time ends, as a broker mutes it.
	mutedUntil atomic.Int64

	// Reader's own.
	corr     int32
	clientID *string
	format   *kmsg.RequestFormatter
}

// inflight is one request sent to the broker, or answered by the door.
type inflight struct {
	corr       int32 // the broker's correlation id
	clientCorr int32
	req        kmsg.Request       // the mapped request; nil when relayed as raw bytes
	local      kmsg.Response      // the door's own answer: nothing was sent
	reply      chan kmsg.Response // the door's own request: its answer goes here
	throttle   time.Duration      // what the request's bytes cost of the tenant's rate
}

// errRefused ends a session whose client sent what the door does not map.
var errRefused = errors.New("request refused")

// carried is what a carried session is: whose, whether its names are
// mapped (a tenant of a shared cluster), and, for a door apart from its
// brokers, the brokers' addresses to show clients.
type carried struct {
	tenant *tenantState
	mapped bool
	routes *proxyRoutes
}

// advertises says whether the session's ApiVersions answer lists key.
func (c carried) advertises(key int16) bool {
	if c.mapped {
		return offeredToTenants(key)
	}
	return offeredToDedicated(key)
}

// offers says whether the session passes requests of key on: what it
// advertises, but the SASL requests, which are the door's own before a
// client is carried (re-authentication is not offered).
func (c carried) offers(key int16) bool {
	return key != saslHandshakeKey && key != saslAuthenticateKey && c.advertises(key)
}

// runTenant carries the session until either side closes or the client
// sends a request the door refuses.
func runTenant(down, up net.Conn, c carried, log *slog.Logger) error {
	t := c.tenant
	s := &tenantSession{t: t, c: c, m: mapper{prefix: t.tenant().Prefix}, down: down, up: up, log: log, now: time.Now,
		queue: make(chan *inflight, maxInflight), dead: make(chan struct{})}
	var wg sync.WaitGroup
	var werr error
	// Either side ending ends both: the reader's closing wakes the writer,
	// the writer's closing the reader.
	wg.Go(func() {
		werr = s.write()
		close(s.dead)
		down.Close()
		up.Close()
	})
	rerr := s.read()
	down.Close()
	up.Close()
	close(s.queue)
	wg.Wait()
	if errors.Is(rerr, errRefused) {
		return rerr
	}
	return errors.Join(rerr, werr)
}

// read handles the client's requests until it closes.
func (s *tenantSession) read() error {
	for {
		if wait := time.Until(time.Unix(0, s.mutedUntil.Load())); wait > 0 {
			select {
			case <-time.After(wait):
			case <-s.dead:
				return nil
			}
		}
		frame, err := readFrame(s.down, maxRequestSize)
		if err != nil {
			return nil // the client went away
		}
		h, err := parseRequestHeader(frame)
		if err != nil {
			return err
		}
		if !s.c.offers(h.key) {
			s.log.Info("kafka client: request type refused", "tenant", s.t.tenant().ID, "key", h.key, "name", kmsg.NameForKey(h.key))
			return fmt.Errorf("%w: key %d", errRefused, h.key)
		}
		s.setClientID(h.clientID)
		if h.key == fetchKey && h.version >= 13 && s.c.routes == nil {
			// Fetch names topics by id from v13 on: nothing to map, and
			// the broker checks the ids against the key's ACLs. The bytes
			// go as they came. (Not apart from the brokers: from v16 a
			// fetch may name a new leader's address.)
			if err := s.relay(frame, h); err != nil {
				return err
			}
			continue
		}
		req := kmsg.RequestForKey(h.key)
		req.SetVersion(h.version)
		// The frame is this request's own, never reused: its strings and
		// records may alias it.
		if err := req.(interface{ UnsafeReadFrom([]byte) error }).UnsafeReadFrom(h.body); err != nil {
			return fmt.Errorf("%s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
		}
		if err := s.handle(req, h.corr); err != nil {
			return err
		}
	}
}

const fetchKey = 1

func (s *tenantSession) setClientID(id *string) {
	if s.format != nil && ((id == nil) == (s.clientID == nil)) && (id == nil || *id == *s.clientID) {
		return
	}
	s.clientID = id
	if id == nil {
		s.format = kmsg.NewRequestFormatter(kmsg.FormatterClientID(""))
		return
	}
	s.format = kmsg.NewRequestFormatter(kmsg.FormatterClientID(*id))
}

// handle maps one request and sends it on, or answers it.
func (s *tenantSession) handle(req kmsg.Request, clientCorr int32) error {
	s.m.request(req)
	e := &inflight{clientCorr: clientCorr, req: req}
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		n := 0
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				n += len(p.Records)
			}
		}
		e.throttle = s.t.produce.take(s.now(), n)
		s.mute(e.throttle)
		if r.Acks == 0 {
			// No answer comes; the broker is still told.
			return s.send(req, nil)
		}
	case *kmsg.CreateTopicsRequest:
		resp, err := s.createTopics(r)
		if err != nil {
			return err
		}
		return s.answer(clientCorr, resp)
	case *kmsg.CreatePartitionsRequest:
		resp, err := s.createPartitions(r)
		if err != nil {
			return err
		}
		return s.answer(clientCorr, resp)
	case *kmsg.MetadataRequest:
		if r.AllowAutoTopicCreation && len(r.Topics) > 0 {
			resp, err := s.metadataCreating(r)
			if err != nil {
				return err
			}
			return s.answer(clientCorr, resp)
		}
	}
	return s.send(req, e)
}

// send writes req to the broker; e, when not nil, awaits its answer.
func (s *tenantSession) send(req kmsg.Request, e *inflight) error {
	s.corr++
	if e != nil {
		e.corr = s.corr
		select {
		case s.queue <- e:
		case <-s.dead:
			return nil
		}
	}
	_, err := s.up.Write(s.format.AppendRequest(nil, req, s.corr))
	return err
}

// relay sends a request's bytes as they came, under the door's
// correlation id.
func (s *tenantSession) relay(frame []byte, h requestHeader) error {
	s.corr++
	select {
	case s.queue <- &inflight{corr: s.corr, clientCorr: h.corr}:
	case <-s.dead:
		return nil
	}
	binary.BigEndian.PutUint32(frame[8:12], uint32(s.corr))
	_, err := s.up.Write(frame)
	return err
}

// answer queues the door's own answer, written in its turn.
func (s *tenantSession) answer(clientCorr int32, resp kmsg.Response) error {
	select {
	case s.queue <- &inflight{clientCorr: clientCorr, local: resp}:
	case <-s.dead:
	}
	return nil
}

// ask sends the door's own request (already mapped) and returns the
// broker's answer.
func (s *tenantSession) ask(req kmsg.Request) (kmsg.Response, error) {
	reply := make(chan kmsg.Response, 1)
	if err := s.send(req, &inflight{req: req, reply: reply}); err != nil {
		return nil, err
	}
	select {
	case resp := <-reply:
		return resp, nil
	case <-s.dead:
		return nil, errors.New("broker connection closed")
	}
}

// mute stops reading the client for d from now.
func (s *tenantSession) mute(d time.Duration) {
	if d <= 0 {
		return
	}
	until := s.now().Add(d).UnixNano()
	for {
		cur := s.mutedUntil.Load()
		if cur >= until || s.mutedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// write answers the client's requests in order.
func (s *tenantSession) write() error {
	for e := range s.queue {
		if e.local != nil {
			// The door's own answers are mapped already; the brokers'
			// addresses in them (a metadata that created topics) are not.
			s.c.routes.rewrite(e.local)
			if err := writeResponse(s.down, e.clientCorr, e.local); err != nil {
				return err
			}
			continue
		}
		var head [responseHeaderSize]byte
		if _, err := io.ReadFull(s.up, head[:]); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		size := int(int32(binary.BigEndian.Uint32(head[:4])))
		if size < responseHeaderSize-4 || size > maxRequestSize {
			return fmt.Errorf("broker: response of %d bytes", size)
		}
		if corr := int32(binary.BigEndian.Uint32(head[4:8])); corr != e.corr {
			return fmt.Errorf("broker answered correlation id %d, want %d", corr, e.corr)
		}
		if e.req == nil {
			if err := s.writeRaw(head, size-4, e); err != nil {
				return err
			}
			continue
		}
		frame := make([]byte, 4+size)
		copy(frame, head[:])
		if _, err := io.ReadFull(s.up, frame[responseHeaderSize:]); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		resp := e.req.ResponseKind()
		resp.SetVersion(e.req.GetVersion())
		if err := parseResponse(frame, resp); err != nil {
			return fmt.Errorf("broker's %s: %w", kmsg.NameForKey(resp.Key()), err)
		}
		if e.reply != nil {
			e.reply <- resp
			continue
		}
		s.m.response(resp)
		s.c.routes.rewrite(resp)
		if av, ok := resp.(*kmsg.ApiVersionsResponse); ok {
			av.ApiKeys = slices.DeleteFunc(av.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return !s.c.advertises(k.ApiKey) })
		}
		throttle := e.throttle
		if f, ok := resp.(*kmsg.FetchResponse); ok {
			n := 0
			for _, t := range f.Topics {
				for _, p := range t.Partitions {
					n += len(p.RecordBatches)
				}
			}
			throttle = s.t.fetch.take(s.now(), n)
			s.mute(throttle)
		}
		if t, ok := resp.(kmsg.SetThrottleResponse); ok && throttle > 0 {
			if ms := int32(throttle / time.Millisecond); ms > 0 {
				cur, _ := resp.(kmsg.ThrottleResponse).Throttle()
				t.SetThrottle(max(cur, ms))
			}
		}
		if err := writeResponse(s.down, e.clientCorr, resp); err != nil {
			return err
		}
	}
	return nil
}

// writeRaw answers a relayed fetch with the broker's bytes, streamed
// rather than held, its throttle time raised when the tenant is past its
// fetch rate. rest is the size of the body after head.
func (s *tenantSession) writeRaw(head [responseHeaderSize]byte, rest int, e *inflight) error {
	binary.BigEndian.PutUint32(head[4:8], uint32(e.clientCorr))
	throttle := s.t.fetch.take(s.now(), rest)
	s.mute(throttle)
	// A flexible response's header ends with its tags, which the broker
	// leaves empty (one zero byte); throttle_time_ms leads the body.
	var lead [5]byte
	if rest < len(lead) {
		return fmt.Errorf("broker: fetch response of %d bytes", rest)
	}
	if _, err := io.ReadFull(s.up, lead[:]); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if ms := int32(throttle / time.Millisecond); ms > 0 && lead[0] == 0 {
		binary.BigEndian.PutUint32(lead[1:], uint32(max(int32(binary.BigEndian.Uint32(lead[1:])), ms)))
	}
	if _, err := s.down.Write(append(head[:], lead[:]...)); err != nil {
		return err
	}
	_, err := io.CopyN(s.down, s.up, int64(rest-len(lead)))
	return err
}

// usage is what the tenant holds on the cluster: its topics and their
// partitions.
type usage struct {
	topics     int
	partitions int
	perTopic   map[string]int // broker names
}

// usage asks the broker for the tenant's topics (the key's ACLs let it
// see only those).
func (s *tenantSession) usage() (usage, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	resp, err := s.ask(req)
	if err != nil {
		return usage{}, err
	}
	u := usage{perTopic: map[string]int{}}
	for _, t := range resp.(*kmsg.MetadataResponse).Topics {
		if t.Topic == nil || !strings.HasPrefix(*t.Topic, s.m.prefix) {
			continue
		}
		u.topics++
		u.partitions += len(t.Partitions)
		u.perTopic[*t.Topic] = len(t.Partitions)
	}
	return u, nil
}

// policyMessage says which limit a creation would pass.
func policyMessage(id, what string, have, adding, limit int) string {
	return fmt.Sprintf("Policy violation: cluster %s is limited to %d %s; it has %d, and this request adds %d. Delete some, or use a larger cluster type",
		id, limit, what, have, adding)
}

// createTopics creates the topics that fit within the tenant's limits
// and refuses the others with POLICY_VIOLATION. req's names are mapped.
func (s *tenantSession) createTopics(req *kmsg.CreateTopicsRequest) (kmsg.Response, error) {
	s.t.creating.Lock()
	defer s.t.creating.Unlock()
	tn := s.t.tenant()
	u, err := s.usage()
	if err != nil {
		return nil, err
	}
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	var refused []kmsg.CreateTopicsResponseTopic
	fits := req.Topics[:0:0]
	topics, partitions := u.topics, u.partitions
	for _, t := range req.Topics {
		n := int(t.NumPartitions)
		if len(t.ReplicaAssignment) > 0 {
			n = len(t.ReplicaAssignment)
		} else if n <= 0 {
			t.NumPartitions = defaultPartitions
			n = defaultPartitions
		}
		var msg string
		switch {
		case tn.Limits.Topics > 0 && topics+1 > tn.Limits.Topics:
			msg = policyMessage(tn.ID, "topics", topics, 1, tn.Limits.Topics)
		case tn.Limits.Partitions > 0 && partitions+n > tn.Limits.Partitions:
			msg = policyMessage(tn.ID, "partitions", partitions, n, tn.Limits.Partitions)
		}
		if msg != "" {
			r := kmsg.NewCreateTopicsResponseTopic()
			r.Topic, r.ErrorCode, r.ErrorMessage = t.Topic, kerr.PolicyViolation.Code, &msg
			refused = append(refused, r)
			continue
		}
		if _, exists := u.perTopic[t.Topic]; !exists && !req.ValidateOnly {
			topics++
			partitions += n
		}
		fits = append(fits, t)
	}
	if len(fits) > 0 {
		req.Topics = fits
		got, err := s.ask(req)
		if err != nil {
			return nil, err
		}
		resp = got.(*kmsg.CreateTopicsResponse)
	}
	resp.Topics = append(resp.Topics, refused...)
	s.m.response(resp)
	return resp, nil
}

// createPartitions adds the partitions that fit within the tenant's
// limit and refuses the others with POLICY_VIOLATION.
func (s *tenantSession) createPartitions(req *kmsg.CreatePartitionsRequest) (kmsg.Response, error) {
	s.t.creating.Lock()
	defer s.t.creating.Unlock()
	tn := s.t.tenant()
	u, err := s.usage()
	if err != nil {
		return nil, err
	}
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	var refused []kmsg.CreatePartitionsResponseTopic
	fits := req.Topics[:0:0]
	partitions := u.partitions
	for _, t := range req.Topics {
		adding := max(int(t.Count)-u.perTopic[t.Topic], 0)
		if tn.Limits.Partitions > 0 && partitions+adding > tn.Limits.Partitions {
			msg := policyMessage(tn.ID, "partitions", partitions, adding, tn.Limits.Partitions)
			r := kmsg.NewCreatePartitionsResponseTopic()
			r.Topic, r.ErrorCode, r.ErrorMessage = t.Topic, kerr.PolicyViolation.Code, &msg
			refused = append(refused, r)
			continue
		}
		if !req.ValidateOnly {
			partitions += adding
		}
		fits = append(fits, t)
	}
	if len(fits) > 0 {
		req.Topics = fits
		got, err := s.ask(req)
		if err != nil {
			return nil, err
		}
		resp = got.(*kmsg.CreatePartitionsResponse)
	}
	resp.Topics = append(resp.Topics, refused...)
	s.m.response(resp)
	return resp, nil
}

// metadataCreating answers a Metadata request that may create the topics
// it names: the broker is asked without creating, and the door creates
// those it does not know through createTopics, so that a topic created by
// a producer counts against the limits as one created by an admin. A
// created topic is answered LEADER_NOT_AVAILABLE, as Kafka answers one it
// just created; the client asks again.
func (s *tenantSession) metadataCreating(req *kmsg.MetadataRequest) (kmsg.Response, error) {
	req.AllowAutoTopicCreation = false
	got, err := s.ask(req)
	if err != nil {
		return nil, err
	}
	resp := got.(*kmsg.MetadataResponse)
	create := kmsg.NewPtrCreateTopicsRequest()
	create.Version = 4
	create.TimeoutMillis = 30_000
	for _, t := range resp.Topics {
		if t.ErrorCode == kerr.UnknownTopicOrPartition.Code && t.Topic != nil {
			ct := kmsg.NewCreateTopicsRequestTopic()
			ct.Topic, ct.NumPartitions, ct.ReplicationFactor = *t.Topic, -1, -1
			create.Topics = append(create.Topics, ct)
		}
	}
	if len(create.Topics) > 0 {
		created, err := s.createTopics(create)
		if err != nil {
			return nil, err
		}
		// createTopics mapped its answer back: match on the tenant's names.
		codes := map[string]int16{}
		for _, t := range created.(*kmsg.CreateTopicsResponse).Topics {
			code := t.ErrorCode
			if code == 0 || code == kerr.TopicAlreadyExists.Code {
				code = kerr.LeaderNotAvailable.Code
			}
			codes[s.m.prefix+t.Topic] = code
		}
		for i := range resp.Topics {
			if t := &resp.Topics[i]; t.Topic != nil {
				if code, ok := codes[*t.Topic]; ok {
					t.ErrorCode = code
				}
			}
		}
	}
	s.m.response(resp)
	return resp, nil
}
