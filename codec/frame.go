package codec

import (
	"encoding/binary"
	"math"
)

// Frame is a parsed datagram. Payload and Tag are views into the buffer
// given to ParseFrame, valid only while that buffer is.
type Frame struct {
	Header  Header
	Payload []byte // view, len == Header.PayloadLen
	Tag     []byte // view, TagLen bytes iff FlagAuth, else nil
}

// ParseFrame decodes a whole datagram: ParseHeader, then ValidatePayload.
// The payload is validated as plaintext: for an authenticated frame whose
// payload is encrypted, call ParseHeader, open the frame, then
// ValidatePayload. It does not allocate.
func ParseFrame(b []byte) (f Frame, err error) {
	h, n, err := ParseHeader(b)
	if err != nil {
		return Frame{}, err
	}
	end := n + int(h.PayloadLen)
	f.Header = h
	f.Payload = b[n:end:end]
	if h.Flags&FlagAuth != 0 {
		f.Tag = b[end : end+TagLen : end+TagLen]
	}
	if err := ValidatePayload(&h, f.Payload); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// ValidatePayload checks a payload against its header, by frame type:
//
//	DATA   Count >= 1 records consuming the payload exactly (ValidateRecords)
//	ALIVE  fixed part, then exactly Count digest entries
//	LEAVE  Count == 0, exactly LeaveLen bytes
//	NACK   fixed part, then exactly Count >= 1 ranges
//	HWM    Count == 0, empty payload
//	ACK    Count == 0, exactly AckLen bytes
//	CHALLENGE, RESPONSE  Count == 0, exactly ChallengeLen bytes
//	PROBE  fixed part, then exactly Count updates
//	SYNC   fixed part, then exactly Count digest entries
//	IHAVE, GRAFT, PRUNE  exactly Count >= 1 tree entries (ErrBadTree)
//
// A Count larger than the payload holds is ErrTooManyRecords, leftover
// bytes are ErrBadLength. It does not allocate.
func ValidatePayload(h *Header, payload []byte) error {
	if len(payload) != int(h.PayloadLen) {
		return ErrBadLength
	}
	count := int(h.Count)
	switch h.Type {
	case TypeData:
		return ValidateRecords(payload, h.Count)
	case TypeAlive:
		_, n, err := ParseAlive(payload)
		if err != nil {
			return err
		}
		return entries(payload[n:], count, DigestEntryLen, digestEntryOK)
	case TypeLeave:
		if count != 0 {
			return ErrTooManyRecords
		}
		if _, _, err := ParseLeave(payload); err != nil {
			return err
		}
		if len(payload) != LeaveLen {
			return ErrBadLength
		}
		return nil
	case TypeNack:
		_, n, err := ParseNack(payload)
		if err != nil {
			return err
		}
		if count == 0 {
			return ErrBadRange
		}
		return entries(payload[n:], count, SeqRangeLen, seqRangeOK)
	case TypeHWM:
		if count != 0 {
			return ErrTooManyRecords
		}
		if len(payload) != 0 {
			return ErrBadLength
		}
		return nil
	case TypeChallenge, TypeResponse:
		_, n, err := ParseChallenge(payload)
		return single(count, n, err, payload)
	case TypeAck:
		_, n, err := ParseAck(payload)
		return single(count, n, err, payload)
	case TypeProbe:
		_, n, err := ParseProbe(payload)
		if err != nil {
			return err
		}
		return entries(payload[n:], count, UpdateLen, updateOK)
	case TypeSync:
		sy, n, err := ParseSync(payload)
		if err != nil {
			return err
		}
		switch sy.Kind {
		case SyncDigest:
			_, m, err := ParseSyncSum(payload[n:])
			return single(count, n+m, err, payload)
		case SyncMarks:
			return entries(payload[n:], count, TreeEntryLen, markOK)
		}
		return entries(payload[n:], count, DigestEntryLen, digestEntryOK)
	case TypeIHave, TypeGraft, TypePrune:
		return validateTree(h.Type, payload, count)
	case TypeJoin:
		_, n, err := ParseJoin(payload)
		return single(count, n, err, payload)
	}
	return ErrBadType
}

// single checks a payload that is one fixed part and nothing else: no
// entries (count 0, else ErrTooManyRecords), a part that parsed (n, err
// from its parser), and no bytes after it (ErrBadLength).
func single(count, n int, err error, payload []byte) error {
	switch {
	case count != 0:
		return ErrTooManyRecords
	case err != nil:
		return err
	case n != len(payload):
		return ErrBadLength
	}
	return nil
}

// entries checks that b is exactly count entries of size bytes and that
// ok accepts each.
func entries(b []byte, count, size int, ok func([]byte) error) error {
	if err := exactEntries(b, count, size); err != nil {
		return err
	}
	for ; len(b) > 0; b = b[size:] {
		if err := ok(b); err != nil {
			return err
		}
	}
	return nil
}

func digestEntryOK(b []byte) error { _, _, err := ParseDigestEntry(b); return err }
func seqRangeOK(b []byte) error    { _, _, err := ParseSeqRange(b); return err }
func updateOK(b []byte) error      { _, _, err := ParseUpdate(b); return err }

// markOK accepts a SyncMarks entry: a mark of seq 0 says nothing and is
// not sent.
func markOK(b []byte) error {
	if e, _, _ := ParseTreeEntry(b); e.Seq == 0 {
		return ErrBadSync
	}
	return nil
}

// exactEntries checks that b holds exactly count fixed-size entries.
func exactEntries(b []byte, count, size int) error {
	switch {
	case count*size > len(b):
		return ErrTooManyRecords
	case count*size < len(b):
		return ErrBadLength
	}
	return nil
}

// FinishFrame patches the count and payload length of a frame built with
// AppendHeader followed by an appended payload (ALIVE, LEAVE, NACK, HWM),
// taking the payload length from len(frame) - HeaderLen; the tag, if any,
// is appended after. Errors: ErrShort (no header), ErrFrameTooLarge (the
// frame, with its tag, exceeds MaxFrameSize). It does not allocate.
func FinishFrame(frame []byte, count uint16) error {
	if len(frame) < HeaderLen {
		return ErrShort
	}
	payload := len(frame) - HeaderLen
	total := len(frame)
	if Flags(frame[offFlags])&FlagAuth != 0 {
		total += TagLen
	}
	if payload > math.MaxUint16 || total > MaxFrameSize {
		return ErrFrameTooLarge
	}
	binary.BigEndian.PutUint16(frame[offCount:], count)
	binary.BigEndian.PutUint16(frame[offPayloadLen:], uint16(payload))
	return nil
}
