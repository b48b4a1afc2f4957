package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestCheckListen(t *testing.T) {
	tests := []struct {
		listen        string
		public, token bool
		want          string // "" = accepted
	}{
		{"127.0.0.1:4222", false, false, ""},
		{"localhost:0", false, false, ""},
		{"[::1]:4222", false, false, ""},
		{"0.0.0.0:4222", false, false, "not loopback"},
		{"0.0.0.0:4222", true, false, "needs a token"},
		{"0.0.0.0:4222", true, true, ""},
		{"127.0.0.1", false, false, "listen address"},
		{"127.0.0.1:99999", false, false, "bad port"},
	}
	for _, tt := range tests {
		err := CheckListen(tt.listen, tt.public, tt.token)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("CheckListen(%q, %v, %v) got %q; want %q", tt.listen, tt.public, tt.token, got, tt.want)
		}
	}
}

func TestTokenAuth(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("s3cret-token\n"), 0o600)
	tok, err := ReadToken(tokFile)
	if err != nil || tok != "s3cret-token" {
		t.Fatalf("ReadToken got %q, %v; want s3cret-token", tok, err)
	}
	os.WriteFile(tokFile, []byte("two words"), 0o600)
	if _, err := ReadToken(tokFile); err == nil {
		t.Error("ReadToken of two words: got nil error")
	}
	s, err := StartServer(ServerOptions{Listen: "127.0.0.1:0", Token: "s3cret-token", StoreDir: filepath.Join(dir, "js")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	for _, tt := range []struct {
		token string
		ok    bool
	}{{"s3cret-token", true}, {"wrong", false}, {"", false}} {
		nc, err := natsConnectOnce(s.URL(), tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("connect with token %q: got %v; want ok %v", tt.token, err, tt.ok)
		}
		if nc != nil {
			nc.Close()
		}
	}
}

func natsConnectOnce(url, token string) (*nats.Conn, error) {
	opts := []nats.Option{nats.MaxReconnects(0)}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	return nats.Connect(url, opts...)
}
