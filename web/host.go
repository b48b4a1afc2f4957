package web

import (
	"net"
	"net/http"
	"strings"
)

// hostGuard refuses a request whose Host header names a host the server was
// not told about, before any handler runs. Cross-origin protection compares
// Origin with Host, so a DNS-rebinding page (evil.example resolving to
// 127.0.0.1) passes it: its requests are same-origin for the browser. The
// Host header is what such a page cannot forge.
//
// Allowed: localhost, 127.0.0.1, [::1] and the bound IP (any IP literal when
// bound to an unspecified address such as 0.0.0.0: rebinding needs a domain
// name, and an IP literal is one the user typed), each with the bound port;
// plus the extra names given (a name without a port matches any port, for a
// reverse proxy).
type hostGuard struct {
	port    string          // the bound port; "" accepts any (tests without a listener)
	anyIP   bool            // bound to an unspecified address
	hosts   map[string]bool // loopback names and the bound IP, lower case, brackets stripped
	extra   map[string]bool // --allowed-host values without a port
	extraHP map[string]bool // --allowed-host values with a port, "host:port"
}

// newHostGuard builds the guard for a server listening on addr (host:port;
// "" when unknown) that also answers to the names in allowed.
func newHostGuard(addr string, allowed []string) *hostGuard {
	g := &hostGuard{hosts: map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true},
		extra: map[string]bool{}, extraHP: map[string]bool{}}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		g.port = port
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			g.anyIP = true
		} else if host != "" {
			g.hosts[strings.ToLower(host)] = true
		}
	}
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		if h, p, err := net.SplitHostPort(a); err == nil {
			g.extraHP[net.JoinHostPort(strings.Trim(h, "[]"), p)] = true
		} else {
			g.extra[strings.Trim(a, "[]")] = true
		}
	}
	return g
}

// allows reports whether a request with Host header hostport may be served.
func (g *hostGuard) allows(hostport string) bool {
	hostport = strings.ToLower(hostport)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, "80" // no port: the scheme's default
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return false
	}
	if g.extra[host] || g.extraHP[net.JoinHostPort(host, port)] {
		return true
	}
	if g.port != "" && port != g.port {
		return false
	}
	if g.hosts[host] {
		return true
	}
	return g.anyIP && net.ParseIP(host) != nil
}

// handler wraps h with the check.
func (g *hostGuard) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.allows(r.Host) {
			writeJSON(w, http.StatusForbidden, map[string]string{
				"error": "host " + quoteHost(r.Host) + " is not served here (start the server with --allowed-host NAME to allow it)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// quoteHost quotes a Host header for an error message, short and printable.
func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100] + "…"
	}
	return strings.ToValidUTF8(`"`+strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, h)+`"`, "?")
}
