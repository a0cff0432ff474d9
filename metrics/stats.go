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
	{"acks_sent_total", "Flow-control progress reports sent.", func(s *engine.Stats) uint64 { return s.AcksSent }},
	{"acks_received_total", "Flow-control progress reports received.", func(s *engine.Stats) uint64 { return s.AcksReceived }},
	{"flow_waits_total", "Sender waits for receivers to catch up.", func(s *engine.Stats) uint64 { return s.FlowWaits }},
	{"flow_timeouts_total", "Sender waits that ended by timeout, not by a report.", func(s *engine.Stats) uint64 { return s.FlowTimeouts }},
	{"gaps_not_owed_total", "Missing sequences a JOIN answer showed were sent before this node was in the origin's fan-out.", func(s *engine.Stats) uint64 { return s.GapsNotOwed }},
	{"join_asks_sent_total", "JOIN asks sent while not ready.", func(s *engine.Stats) uint64 { return s.JoinAsksSent }},
	{"join_answers_sent_total", "JOIN answers sent to members asking.", func(s *engine.Stats) uint64 { return s.JoinAnswersSent }},
	{"join_marks_asked_total", "Stream-marks requests sent while not ready.", func(s *engine.Stats) uint64 { return s.JoinMarksAsked }},
	{"join_marks_answered_total", "Stream-marks answers sent to members asking.", func(s *engine.Stats) uint64 { return s.JoinMarksAnswered }},
	{"join_marks_refused_total", "Stream-marks requests not answered: over the answer budget.", func(s *engine.Stats) uint64 { return s.JoinMarksRefused }},
	{"marks_used_total", "Origin streams started from a member's mark instead of the epoch's first sequence.", func(s *engine.Stats) uint64 { return s.MarksUsed }},
	{"origins_evicted_total", "Per-origin receive states forgotten to stay within the origin table's caps.", func(s *engine.Stats) uint64 { return s.OriginsEvicted }},
	{"challenges_sent_total", "Address-validation challenges sent.", func(s *engine.Stats) uint64 { return s.ChallengesSent }},
	{"challenges_suppressed_total", "Challenges not sent: credit or pacing said no.", func(s *engine.Stats) uint64 { return s.ChallengesSuppressed }},
	{"responses_sent_total", "Answers to other nodes' challenges.", func(s *engine.Stats) uint64 { return s.ResponsesSent }},
	{"validations_total", "Addresses validated (a response with a good cookie).", func(s *engine.Stats) uint64 { return s.Validations }},
	{"sync_digests_sent_total", "Periodic push-pulls begun with a summary of the member table.", func(s *engine.Stats) uint64 { return s.SyncDigestsSent }},
	{"sync_digests_agreed_total", "Push-pull summaries received that matched this node's table (no table sent).", func(s *engine.Stats) uint64 { return s.SyncDigestsAgreed }},
	{"vouched_total", "Members taken as validated on an authenticated member's word (keyring), without a challenge.", func(s *engine.Stats) uint64 { return s.Vouched }},
}

// statGauge maps one engine.Stats level to a gauge.
type statGauge struct {
	name, help string
	value      func(*engine.Stats) float64
}

var statGauges = []statGauge{
	{"ready", "1 once the node is coherent with the mesh (engine.Node.Ready), else 0.", func(s *engine.Stats) float64 {
		if s.Ready {
			return 1
		}
		return 0
	}},
	{"origins", "Per-origin receive states held.", func(s *engine.Stats) float64 { return float64(s.Origins) }},
	{"members_unvalidated", "Nodes heard of whose address is not yet validated.", func(s *engine.Stats) float64 { return float64(s.MembersUnvalidated) }},
}
