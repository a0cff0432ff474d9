package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testnet"
)

func adminNode(t *testing.T) *engine.Node {
	t.Helper()
	n, err := engine.New(engine.Options{Port: engine.AnyPort, BindAddr: "127.0.0.1", UnicastOnly: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func do(t *testing.T, method, url, token string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminToken(t *testing.T) {
	n := adminNode(t)
	srv := httptest.NewServer(adminHandler(n, adminConfig{token: "s3cret"}))
	defer srv.Close()
	for _, tt := range []struct {
		method, path, token string
		body                string
		want                int
	}{
		{"GET", "/healthz", "", "", http.StatusOK}, // probes need no token
		{"GET", "/members", "", "", http.StatusUnauthorized},
		{"GET", "/stats", "wrong", "", http.StatusUnauthorized},
		{"GET", "/metrics", "", "", http.StatusUnauthorized},
		{"POST", "/invalidate", "", `{"keys":["a"]}`, http.StatusUnauthorized},
		{"GET", "/members", "s3cret", "", http.StatusOK},
		{"GET", "/stats", "s3cret", "", http.StatusOK},
		{"POST", "/invalidate", "s3cret", `{"keys":["a"]}`, http.StatusOK},
	} {
		got, body := do(t, tt.method, srv.URL+tt.path, tt.token, strings.NewReader(tt.body))
		if got != tt.want {
			t.Errorf("%s %s token %q: %d %s, want %d", tt.method, tt.path, tt.token, got, body, tt.want)
		}
	}
	if p := n.Stats().Published; p != 1 {
		t.Fatalf("published %d, want only the authenticated request's key", p)
	}
}

func TestAdminBodyCheckedWhole(t *testing.T) {
	n := adminNode(t)
	srv := httptest.NewServer(adminHandler(n, adminConfig{}))
	defer srv.Close()
	long := strings.Repeat("k", 2000)
	for _, tt := range []struct {
		body string
		want int
	}{
		{`{"keys":["a","","b"]}`, http.StatusBadRequest},
		{`{"keys":["a","b"],"prefixes":["` + long + `"]}`, http.StatusBadRequest},
		{`{"keys":["a"]} {"keys":["b"]}`, http.StatusBadRequest},
		{`{"keys":["a"]} trailing`, http.StatusBadRequest},
		{`{"keys":["` + strings.Repeat("x", maxInvalidateBody) + `"]}`, http.StatusRequestEntityTooLarge},
	} {
		got, body := do(t, "POST", srv.URL+"/invalidate", "", strings.NewReader(tt.body))
		if got != tt.want {
			t.Errorf("body %.60q: %d %s, want %d", tt.body, got, body, tt.want)
		}
	}
	if p := n.Stats().Published; p != 0 {
		t.Fatalf("%d keys queued from rejected bodies", p)
	}
}

func TestAdminConcurrency(t *testing.T) {
	n := adminNode(t)
	srv := httptest.NewServer(adminHandler(n, adminConfig{}))
	defer srv.Close()
	// maxInvalidateRequests requests whose bodies never finish: each is
	// sent on a raw connection, headers and the first byte of a
	// 1000-byte body, so its handler holds a slot while it waits for the
	// rest. (An http.Client with a body that blocks in Read sometimes
	// never reached the handler: the third request then got 200.)
	var held []net.Conn
	defer func() { // before srv.Close: closing ends the handlers' reads
		for _, c := range held {
			c.Close()
		}
	}()
	for range maxInvalidateRequests {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := io.WriteString(c, "POST /invalidate HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
	}
	// Once both slots are taken, a third request is turned away at once.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _ := do(t, "POST", srv.URL+"/invalidate", "", strings.NewReader(`{"keys":["x"]}`))
		if got == http.StatusTooManyRequests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("third concurrent invalidation got %d, want 429", got)
		}
		time.Sleep(2 * time.Millisecond) // poll interval
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	// The slots come back once the held requests end.
	testnet.WaitFor(t, 10*time.Second, "an invalidation accepted after the held ones ended", func() bool {
		got, _ := do(t, "POST", srv.URL+"/invalidate", "", strings.NewReader(`{"keys":["y"]}`))
		return got == http.StatusOK
	})
	var wg sync.WaitGroup

	// The global bound, on a handler that blocks.
	hold := make(chan struct{})
	entered := make(chan struct{}, maxAdminRequests)
	g := httptest.NewServer(guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-hold
	}), adminConfig{}))
	defer g.Close()
	for range maxAdminRequests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.Get(g.URL + "/stats"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	for range maxAdminRequests {
		<-entered
	}
	if got, _ := do(t, "GET", g.URL+"/stats", "", nil); got != http.StatusServiceUnavailable {
		t.Errorf("request beyond maxAdminRequests got %d, want 503", got)
	}
	close(hold)
	wg.Wait()
}

// TestAdminFlood: 16 parallel 3.9 MB POST /invalidate (the row).
func TestAdminFlood(t *testing.T) {
	n := adminNode(t)
	srv := httptest.NewServer(adminHandler(n, adminConfig{}))
	defer srv.Close()
	var keys []string
	for i := 0; len(keys)*14 < 3900000; i++ { // ~14 JSON bytes a key: a 3.9 MB body
		keys = append(keys, fmt.Sprintf("key:%06d", i))
	}
	body, _ := json.Marshal(invalidateRequest{Keys: keys})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(srv.URL+"/invalidate", "application/json", bytes.NewReader(body))
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	t.Logf("figure: admin flood: 16 parallel %.1f MB POST /invalidate: answers %v; published %d; heap %.1f -> %.1f MiB (peak sys %.1f MiB)",
		float64(len(body))/1e6, codes, n.Stats().Published, float64(before.HeapAlloc)/(1<<20), float64(after.HeapAlloc)/(1<<20), float64(after.Sys)/(1<<20))
	if codes[http.StatusOK] != 0 || n.Stats().Published != 0 {
		t.Fatalf("oversized bodies accepted: %v, %d published", codes, n.Stats().Published)
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := readToken(write("ok", "  abc123\n")); err != nil || tok != "abc123" {
		t.Fatalf("readToken = %q, %v", tok, err)
	}
	for _, bad := range []string{"", " \n", "a\nb"} {
		if _, err := readToken(write("bad", bad)); err == nil {
			t.Errorf("token file %q accepted", bad)
		}
	}
	if _, err := readToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing token file accepted")
	}
}
