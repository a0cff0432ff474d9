package metrics

import "github.com/warpmesh/warpmesh/engine"

// statCounter maps one engine.Stats counter to a metric name (without the
// namespace). Adding a counter to the engine means adding a line here.
type statCounter struct {
	name, help string
	value      func(*engine.Stats) uint64
}

var statCounters = []statCounter{
	{"frames_sent_total", "Datagrams written.", func(s *engine.Stats) uint64 { return s.FramesSent }},
	{"frames_received_total", "Datagrams read.", func(s *engine.Stats) uint64 { return s.FramesReceived }},
	{"records_sent_total", "Invalidations packed into frames by this node.", func(s *engine.Stats) uint64 { return s.RecordsSent }},
	{"records_received_total", "Invalidations from other nodes applied.", func(s *engine.Stats) uint64 { return s.RecordsReceived }},
	{"bytes_sent_total", "Bytes written.", func(s *engine.Stats) uint64 { return s.BytesSent }},
	{"bytes_received_total", "Bytes read.", func(s *engine.Stats) uint64 { return s.BytesReceived }},
	{"write_syscalls_total", "sendmmsg calls.", func(s *engine.Stats) uint64 { return s.WriteSyscalls }},
	{"read_syscalls_total", "recvmmsg calls.", func(s *engine.Stats) uint64 { return s.ReadSyscalls }},
	{"send_batches_total", "Sender loop flushes.", func(s *engine.Stats) uint64 { return s.SendBatches }},
	{"published_total", "Invalidations accepted from the application.", func(s *engine.Stats) uint64 { return s.Published }},
	{"relayed_frames_total", "Frames forwarded for other origins.", func(s *engine.Stats) uint64 { return s.Relayed }},
	{"data_frames_total", "DATA frames applied (first copies).", func(s *engine.Stats) uint64 { return s.DataFrames }},
	{"duplicate_frames_total", "DATA frames dropped as already applied.", func(s *engine.Stats) uint64 { return s.Duplicates }},
	{"heartbeats_sent_total", "Heartbeats sent.", func(s *engine.Stats) uint64 { return s.HeartbeatsSent }},
	{"heartbeats_received_total", "Heartbeats received.", func(s *engine.Stats) uint64 { return s.HeartbeatsReceived }},
	{"send_errors_total", "Datagrams the kernel refused to send.", func(s *engine.Stats) uint64 { return s.SendErrors }},
	{"gaps_detected_total", "Gaps opened: a missing sequence noticed.", func(s *engine.Stats) uint64 { return s.GapsDetected }},
	{"gaps_repaired_total", "Gaps closed by retransmission or late arrival.", func(s *engine.Stats) uint64 { return s.GapsRepaired }},
	{"frames_lost_total", "Sequences covered by Gap events (given up; caches flushed).", func(s *engine.Stats) uint64 { return s.FramesLost }},
	{"nacks_sent_total", "NACKs sent asking origins for missing frames.", func(s *engine.Stats) uint64 { return s.NacksSent }},
	{"nacks_received_total", "NACKs received from members.", func(s *engine.Stats) uint64 { return s.NacksReceived }},
	{"retransmitted_frames_total", "Frames resent in answer to NACKs.", func(s *engine.Stats) uint64 { return s.Retransmitted }},
	{"retransmits_received_total", "Retransmitted frames applied.", func(s *engine.Stats) uint64 { return s.RetransmitsReceived }},
	{"hwm_sent_total", "High-water-mark announcements sent.", func(s *engine.Stats) uint64 { return s.HWMSent }},
	{"hwm_received_total", "High-water-mark announcements received.", func(s *engine.Stats) uint64 { return s.HWMReceived }},
}
