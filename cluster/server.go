// Package cluster runs sweep points on worker machines through NATS
// JetStream (DESIGN, "Scale-out: sweeps on NATS JetStream"): a Coordinator
// beside the database publishes one job per point on a work-queue stream,
// Workers (dial-out only, one point at a time) compute it with
// sweep.Computer and publish the result, and the coordinator alone writes
// SQLite. Server embeds a NATS server with JetStream for `serve --cluster`.
package cluster

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configure an embedded NATS server.
type ServerOptions struct {
	// Listen is host:port; port 0 picks a free one. The host must be a
	// loopback address unless Public is set.
	Listen string
	// Public allows a non-loopback Listen; it needs Token.
	Public bool
	// Token, when not empty, is the authentication token clients must give.
	Token string
	// StoreDir holds JetStream's file store.
	StoreDir string
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns *server.Server
}

// StartServer starts an embedded NATS server and waits until it accepts
// clients.
func StartServer(o ServerOptions) (*Server, error) {
	if err := CheckListen(o.Listen, o.Public, o.Token != ""); err != nil {
		return nil, err
	}
	host, portText, _ := net.SplitHostPort(o.Listen)
	port, _ := strconv.Atoi(portText)
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(o.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	opts := &server.Options{
		ServerName: "rmprune", Host: host, Port: port, JetStream: true, StoreDir: o.StoreDir,
		Authorization: o.Token, NoSigs: true, NoLog: true, MaxPayload: 8 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("cluster: nats server on %s did not start", o.Listen)
	}
	return &Server{ns: ns}, nil
}

// URL is the nats:// address clients dial.
func (s *Server) URL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits for it.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// CheckListen checks an embedded server's listen address: host:port, a
// loopback host unless public, and then a token.
func CheckListen(listen string, public, token bool) error {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("cluster: nats listen address %q: %w", listen, err)
	}
	if port, err := strconv.Atoi(portText); err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("cluster: nats listen address %q: bad port", listen)
	}
	if !isLoopback(host) {
		if !public {
			return fmt.Errorf("cluster: nats listen address %q is not loopback: add --nats-public and --nats-token-file", listen)
		}
		if !token {
			return fmt.Errorf("cluster: nats listen address %q is not loopback: it needs a token (--nats-token-file)", listen)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadToken reads an authentication token from a file (one line; surrounding
// space is dropped).
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cluster: token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("cluster: token file %s: want one non-empty word", path)
	}
	return tok, nil
}
