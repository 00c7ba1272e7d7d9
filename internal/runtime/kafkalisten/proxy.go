package kafkalisten

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ProxyConfig configures a front door that runs apart from its brokers:
// on Kubernetes, a Deployment in front of the brokers Strimzi runs. It is
// the same door as FrontDoor's (TLS, PLAIN and SCRAM relayed to the
// brokers, tenants' names mapped on a shared cluster, their limits), with
// one listener for bootstrapping and one per broker, each of which dials
// the broker it stands for.
type ProxyConfig struct {
	// TLS is the server side of the clients' TLS; nil serves plaintext.
	TLS     *tls.Config
	Tenants *Tenants
	// Dial reaches a broker (TLS with the brokers' CA, on Kubernetes).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Bootstrap is the address clients bootstrap from, and the brokers'
	// addresses a bootstrapping client is carried to (any one of them).
	Bootstrap ProxyListener
	Upstream  []string
	// Brokers are the brokers clients reach through the door.
	Brokers []ProxyBroker
	// REST, if set, serves HTTP clients on the same addresses (Kafka REST
	// v3), as FrontDoorConfig.REST.
	REST http.Handler
	// Meter, as FrontDoorConfig.Meter: the bytes each tenant's clients
	// sent and received through the door.
	Meter  func(tenant string, in, out int64)
	Logger *slog.Logger
}

// ProxyListener is where the door listens and what it tells clients to
// dial there (a load balancer's address, on Kubernetes).
type ProxyListener struct {
	Listen     string `json:"listen"`
	Advertised string `json:"advertised,omitempty"`
}

// ProxyBroker is one broker behind the door.
type ProxyBroker struct {
	Node int32 `json:"node"`
	// Upstream is the broker's own address, which clients never see.
	Upstream string `json:"upstream"`
	ProxyListener
}

// ProxySettings are what a proxy process runs from (on Kubernetes, the
// ConfigMap its satellite writes, which the process reads again when it
// changes): its listeners, the brokers behind it and the cluster's
// tenants. They hold no secret: the brokers check every credential.
type ProxySettings struct {
	Bootstrap ProxyListener `json:"bootstrap"`
	Upstream  []string      `json:"upstream"`
	Brokers   []ProxyBroker `json:"brokers"`
	Tenants   []Tenant      `json:"tenants"`
}

// proxyRoutes are the brokers of a door apart from them: each broker's
// address as clients must dial it, which every response naming brokers
// gets instead of the brokers' own.
type proxyRoutes struct {
	mu      sync.RWMutex
	brokers map[int32]hostPort
	log     *slog.Logger
}

type hostPort struct {
	host string
	port int32
}

func parseHostPort(addr string) (hostPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return hostPort{}, err
	}
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		return hostPort{}, fmt.Errorf("port of %q: %w", addr, err)
	}
	return hostPort{host: host, port: int32(p)}, nil
}

// advertised returns what clients must dial for node; a broker the door
// does not stand for is kept as the broker named it, and logged: a client
// cannot reach it, and will ask again.
func (r *proxyRoutes) advertised(node int32, host *string, port *int32) {
	r.mu.RLock()
	hp, ok := r.brokers[node]
	r.mu.RUnlock()
	if !ok {
		r.log.Warn("kafka proxy: a broker the proxy does not stand for", "node", node)
		return
	}
	*host, *port = hp.host, hp.port
}

// rewrite replaces the brokers' addresses in a response with the door's.
func (r *proxyRoutes) rewrite(resp kmsg.Response) {
	if r == nil {
		return
	}
	switch v := resp.(type) {
	case *kmsg.MetadataResponse:
		for i := range v.Brokers {
			r.advertised(v.Brokers[i].NodeID, &v.Brokers[i].Host, &v.Brokers[i].Port)
		}
	case *kmsg.FindCoordinatorResponse:
		if v.Host != "" {
			r.advertised(v.NodeID, &v.Host, &v.Port)
		}
		for i := range v.Coordinators {
			if c := &v.Coordinators[i]; c.Host != "" {
				r.advertised(c.NodeID, &c.Host, &c.Port)
			}
		}
	case *kmsg.DescribeClusterResponse:
		for i := range v.Brokers {
			r.advertised(v.Brokers[i].NodeID, &v.Brokers[i].Host, &v.Brokers[i].Port)
		}
	case *kmsg.ProduceResponse:
		for i := range v.Brokers {
			r.advertised(v.Brokers[i].NodeID, &v.Brokers[i].Host, &v.Brokers[i].Port)
		}
	case *kmsg.FetchResponse:
		for i := range v.Brokers {
			r.advertised(v.Brokers[i].NodeID, &v.Brokers[i].Host, &v.Brokers[i].Port)
		}
	}
}

// Proxy is a running door apart from its brokers.
type Proxy struct {
	cfg       ProxyConfig
	routes    *proxyRoutes
	door      *frontDoor
	listeners []net.Listener
	wg        sync.WaitGroup
}

// NewProxy listens on the bootstrap address and every broker's, and
// serves clients until Close.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if len(cfg.Upstream) == 0 {
		return nil, errors.New("kafka proxy: no upstream broker to bootstrap from")
	}
	routes := &proxyRoutes{brokers: map[int32]hostPort{}, log: cfg.Logger}
	p := &Proxy{cfg: cfg, routes: routes, door: &frontDoor{
		cfg:    FrontDoorConfig{TLS: cfg.TLS, Tenants: cfg.Tenants, REST: cfg.REST, Meter: cfg.Meter, Logger: cfg.Logger},
		budget: &signInBudget{now: time.Now, failed: map[string]*failures{}},
		proxy:  routes,
	}}
	listen := func(at string) error {
		ln, err := net.Listen("tcp", at)
		if err != nil {
			return fmt.Errorf("kafka proxy: %w", err)
		}
		p.listeners = append(p.listeners, ln)
		return nil
	}
	next := 0
	var mu sync.Mutex
	bootstrap := func() string {
		mu.Lock()
		defer mu.Unlock()
		next++
		return cfg.Upstream[next%len(cfg.Upstream)]
	}
	if err := listen(cfg.Bootstrap.Listen); err != nil {
		p.Close()
		return nil, err
	}
	upstreams := []func() string{bootstrap}
	for _, b := range cfg.Brokers {
		if err := listen(b.Listen); err != nil {
			p.Close()
			return nil, err
		}
		upstreams = append(upstreams, func() string { return b.Upstream })
	}
	// Every broker's advertised address is known before the first client
	// is served (an empty one is the address listened on, in tests).
	for i, b := range cfg.Brokers {
		hp, err := parseHostPort(cmp.Or(b.Advertised, p.listeners[i+1].Addr().String()))
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("kafka proxy: broker %d: advertised address: %w", b.Node, err)
		}
		routes.brokers[b.Node] = hp
	}
	for i, ln := range p.listeners {
		p.wg.Go(func() { p.accept(ln, upstreams[i]) })
	}
	return p, nil
}

// Addrs are the addresses the proxy listens on: the bootstrap one first,
// then each broker's in the order configured.
func (p *Proxy) Addrs() []string {
	out := make([]string, len(p.listeners))
	for i, ln := range p.listeners {
		out[i] = ln.Addr().String()
	}
	return out
}

func (p *Proxy) accept(ln net.Listener, upstream func() string) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			addr := upstream()
			ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
			up, err := p.cfg.Dial(ctx, "tcp", addr)
			cancel()
			if err != nil {
				p.cfg.Logger.Warn("kafka proxy: broker unreachable", "broker", addr, "err", err)
				client.Close()
				return
			}
			p.door.serve(client, up, nil)
		}()
	}
}

// Close stops listening; connections already carried end with their
// clients.
func (p *Proxy) Close() error {
	var errs []error
	if ln := p.door.httpLn.Load(); ln != nil {
		ln.Close()
	}
	for _, ln := range p.listeners {
		errs = append(errs, ln.Close())
	}
	p.wg.Wait()
	return errors.Join(errs...)
}
