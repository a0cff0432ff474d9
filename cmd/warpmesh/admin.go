package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/metrics"
)

// The admin endpoint (--http) of a node:
//
//	GET  /healthz     {"status":"ok","id":"…","members_alive":n} (liveness)
//	GET  /readyz      200 {"ready":true} once engine.Node.Ready, else 503
//	                  {"ready":false} (a Kubernetes readiness probe)
//	GET  /members     membersDoc
//	GET  /stats       statsDoc
//	GET  /metrics     Prometheus text format (metrics.Collector + Go runtime)
//	POST /invalidate  {"keys":["…"],"prefixes":["…"]} → {"keys":n,"prefixes":m}
//
// Exposure: POST /invalidate empties caches across the whole mesh and the
// GET routes show its membership, so the endpoint belongs on localhost or a
// private interface; with --http-token-file every route but the probes
// (/healthz, /readyz) needs "Authorization: Bearer <token>". Whatever the
// token, requests are bounded: at most maxAdminRequests at once (the rest
// get 503), POST /invalidate at most maxInvalidateRequests at once and
// maxInvalidateBody bytes, its body checked whole (JSON, every key) before
// anything is queued.

// memberDoc is one member in /members.
type memberDoc struct {
	ID          string    `json:"id"` // 16 hex digits
	Addr        string    `json:"addr"`
	State       string    `json:"state"`
	Epoch       uint64    `json:"epoch"`
	Incarnation uint64    `json:"incarnation"`
	LastHeard   time.Time `json:"last_heard,omitzero"`
}

// membersDoc is the /members response: this node, then the others by id.
type membersDoc struct {
	Self    memberDoc   `json:"self"`
	Cluster string      `json:"cluster"`
	Members []memberDoc `json:"members"`
}

// statsDoc is the /stats response: engine.Stats with stable names.
type statsDoc struct {
	ID                  string            `json:"id"`
	FramesSent          uint64            `json:"frames_sent"`
	FramesReceived      uint64            `json:"frames_received"`
	RecordsSent         uint64            `json:"records_sent"`
	RecordsReceived     uint64            `json:"records_received"`
	BytesSent           uint64            `json:"bytes_sent"`
	BytesReceived       uint64            `json:"bytes_received"`
	WriteSyscalls       uint64            `json:"write_syscalls"`
	ReadSyscalls        uint64            `json:"read_syscalls"`
	SendBatches         uint64            `json:"send_batches"`
	Published           uint64            `json:"published"`
	Relayed             uint64            `json:"relayed"`
	DataFrames          uint64            `json:"data_frames"`
	Duplicates          uint64            `json:"duplicates"`
	HeartbeatsSent      uint64            `json:"heartbeats_sent"`
	HeartbeatsReceived  uint64            `json:"heartbeats_received"`
	SendErrors          uint64            `json:"send_errors"`
	GapsDetected        uint64            `json:"gaps_detected"`
	GapsRepaired        uint64            `json:"gaps_repaired"`
	GapsGivenUp         map[string]uint64 `json:"gaps_given_up"`
	FramesLost          uint64            `json:"frames_lost"`
	NacksSent           uint64            `json:"nacks_sent"`
	NacksReceived       uint64            `json:"nacks_received"`
	Retransmitted       uint64            `json:"retransmitted"`
	RetransmitsReceived uint64            `json:"retransmits_received"`
	HWMSent             uint64            `json:"hwm_sent"`
	HWMReceived         uint64            `json:"hwm_received"`
	Repairs             uint64            `json:"repairs"` // samples in the repair latency histogram
	RepairMax           string            `json:"repair_latency_max"`
	RepairP50           string            `json:"repair_latency_p50"`
	RepairP99           string            `json:"repair_latency_p99"`
	Dropped             uint64            `json:"dropped"`
	Drops               map[string]uint64 `json:"drops"`
	Members             map[string]int    `json:"members"`
	MembersEvicted      uint64            `json:"members_evicted"`
	MembersRefused      uint64            `json:"members_refused"`
	ChallengesSent      uint64            `json:"challenges_sent"`
	ChallengesSkipped   uint64            `json:"challenges_suppressed"`
	ResponsesSent       uint64            `json:"responses_sent"`
	ResponsesSkipped    uint64            `json:"responses_suppressed"`
	Validations         uint64            `json:"validations"`
	Vouched             uint64            `json:"vouched"`
	RecvBuffer          int               `json:"recv_buffer"`
	SendBuffer          int               `json:"send_buffer"`
}

// invalidateRequest is the body of POST /invalidate.
type invalidateRequest struct {
	Keys     []string `json:"keys"`
	Prefixes []string `json:"prefixes"`
}

// invalidateResponse counts what POST /invalidate queued.
type invalidateResponse struct {
	Keys     int `json:"keys"`
	Prefixes int `json:"prefixes"`
}

// Admin endpoint bounds.
const (
	maxInvalidateBody     = 1 << 20 // bytes of a POST /invalidate body
	maxInvalidateRequests = 2       // POST /invalidate handled at once
	maxAdminRequests      = 16      // requests of any kind handled at once
)

// probePaths answer without the bearer token: orchestrators probe them.
var probePaths = map[string]bool{"/healthz": true, "/readyz": true}

// adminConfig configures the admin endpoint.
type adminConfig struct {
	// token, when not empty, must arrive as "Authorization: Bearer <token>"
	// on every route but probePaths.
	token string
}

func memberDocOf(m engine.Member) memberDoc {
	return memberDoc{
		ID: fmt.Sprintf("%016x", m.ID), Addr: m.Addr.String(), State: m.State.String(),
		Epoch: m.Epoch, Incarnation: m.Incarnation, LastHeard: m.LastHeard,
	}
}

func statsDocOf(n *engine.Node) statsDoc {
	s := n.Stats()
	d := statsDoc{
		ID:         fmt.Sprintf("%016x", n.ID()),
		FramesSent: s.FramesSent, FramesReceived: s.FramesReceived,
		RecordsSent: s.RecordsSent, RecordsReceived: s.RecordsReceived,
		BytesSent: s.BytesSent, BytesReceived: s.BytesReceived,
		WriteSyscalls: s.WriteSyscalls, ReadSyscalls: s.ReadSyscalls,
		SendBatches: s.SendBatches, Published: s.Published, Relayed: s.Relayed,
		DataFrames: s.DataFrames, Duplicates: s.Duplicates,
		HeartbeatsSent: s.HeartbeatsSent, HeartbeatsReceived: s.HeartbeatsReceived,
		SendErrors: s.SendErrors, Dropped: s.Dropped(),
		Drops:        make(map[string]uint64),
		GapsDetected: s.GapsDetected, GapsRepaired: s.GapsRepaired, GapsGivenUp: make(map[string]uint64),
		FramesLost: s.FramesLost, NacksSent: s.NacksSent, NacksReceived: s.NacksReceived,
		Retransmitted: s.Retransmitted, RetransmitsReceived: s.RetransmitsReceived,
		HWMSent: s.HWMSent, HWMReceived: s.HWMReceived,
		Repairs: s.RepairLatency.Count, RepairMax: s.RepairLatency.Max.String(),
		RepairP50: s.RepairLatency.Quantile(0.5).String(), RepairP99: s.RepairLatency.Quantile(0.99).String(),
		Members: map[string]int{
			"alive": s.MembersAlive, "suspect": s.MembersSuspect, "dead": s.MembersDead, "left": s.MembersLeft,
			"unvalidated": s.MembersUnvalidated,
		},
		MembersEvicted: s.MembersEvicted, MembersRefused: s.MembersRefused,
		ChallengesSent: s.ChallengesSent, ChallengesSkipped: s.ChallengesSuppressed,
		ResponsesSent: s.ResponsesSent, ResponsesSkipped: s.ResponsesSuppressed,
		Validations: s.Validations, Vouched: s.Vouched,
		RecvBuffer: s.RecvBuffer, SendBuffer: s.SendBuffer,
	}
	for _, r := range engine.DropReasons() {
		d.Drops[r.String()] = s.Drops[r]
	}
	for i := 1; i < len(s.GapsGivenUp); i++ {
		d.GapsGivenUp[engine.GapReason(i).String()] = s.GapsGivenUp[i]
	}
	return d
}

// adminHandler serves a node's admin endpoint, behind guard.
func adminHandler(n *engine.Node, cfg adminConfig) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(n, nil), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"status": "ok", "id": fmt.Sprintf("%016x", n.ID()), "members_alive": n.Stats().MembersAlive,
		})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusOK
		if !n.Ready() {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": n.Ready(), "id": fmt.Sprintf("%016x", n.ID())})
	})
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		doc := membersDoc{
			Self:    memberDoc{ID: fmt.Sprintf("%016x", n.ID()), Addr: n.Addr().String(), State: engine.StateAlive.String(), Epoch: n.Epoch()},
			Cluster: n.Cluster(),
			Members: []memberDoc{},
		}
		for _, m := range n.Members() {
			doc.Members = append(doc.Members, memberDocOf(m))
		}
		writeJSON(w, http.StatusOK, doc)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statsDocOf(n))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	invalidations := make(chan struct{}, maxInvalidateRequests)
	mux.HandleFunc("POST /invalidate", func(w http.ResponseWriter, r *http.Request) {
		select {
		case invalidations <- struct{}{}:
			defer func() { <-invalidations }()
		default:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, fmt.Errorf("%d invalidation requests in progress", maxInvalidateRequests))
			return
		}
		req, err := decodeInvalidate(w, r)
		if err != nil {
			status := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				status = http.StatusRequestEntityTooLarge
			}
			writeError(w, status, err)
			return
		}
		var resp invalidateResponse
		for _, k := range req.Keys {
			if err := n.Publish(r.Context(), []byte(k), false); err != nil {
				writeError(w, publishStatus(err), fmt.Errorf("key %q: %w (%d keys queued before it)", k, err, resp.Keys))
				return
			}
			resp.Keys++
		}
		for _, p := range req.Prefixes {
			if err := n.Publish(r.Context(), []byte(p), true); err != nil {
				writeError(w, publishStatus(err), fmt.Errorf("prefix %q: %w (%d keys, %d prefixes queued before it)", p, err, resp.Keys, resp.Prefixes))
				return
			}
			resp.Prefixes++
		}
		writeJSON(w, http.StatusOK, resp)
	})
	return guard(mux, cfg)
}

// decodeInvalidate reads and checks a POST /invalidate body whole: one JSON
// object with known fields only, nothing after it, at least one key, and
// every key and prefix valid. Nothing is queued before it returns.
func decodeInvalidate(w http.ResponseWriter, r *http.Request) (invalidateRequest, error) {
	var req invalidateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxInvalidateBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("body: data after the JSON object")
	}
	if len(req.Keys)+len(req.Prefixes) == 0 {
		return req, errors.New("body: no keys or prefixes")
	}
	for i, k := range req.Keys {
		if err := codec.ValidateKey([]byte(k)); err != nil {
			return req, fmt.Errorf("body: keys[%d] %.40q: %w (nothing queued)", i, k, err)
		}
	}
	for i, p := range req.Prefixes {
		if err := codec.ValidateKey([]byte(p)); err != nil {
			return req, fmt.Errorf("body: prefixes[%d] %.40q: %w (nothing queued)", i, p, err)
		}
	}
	return req, nil
}

// guard bounds concurrent requests and, with a token, authenticates them.
func guard(next http.Handler, cfg adminConfig) http.Handler {
	slots := make(chan struct{}, maxAdminRequests)
	want := []byte("Bearer " + cfg.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cfg.token != "" && !probePaths[r.URL.Path] &&
			subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="warpmesh"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%d admin requests in progress", maxAdminRequests))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readToken reads a bearer token file: its content with surrounding white
// space removed, which must not be empty.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("empty token")
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", errors.New("token spans several lines")
	}
	return tok, nil
}

func publishStatus(err error) int {
	if errors.Is(err, engine.ErrClosed) {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the client may have gone; nothing to do about it
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
