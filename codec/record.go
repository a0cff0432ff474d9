package codec

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Record constants.
const (
	// MaxKeyLen is the longest key a record carries. A longer key is an
	// error (ErrKeyTooLong), never truncated.
	MaxKeyLen = 1024
	// RecordHeaderLen is the fixed part of a record before the key bytes.
	RecordHeaderLen = 12
)

// Record field offsets (see "DATA payload" in doc.go).
const (
	offRecKeyLen   = 0  // u16 key length, 1..MaxKeyLen
	offRecFlags    = 2  // u8  RecordFlags
	offRecReserved = 3  // u8  zero
	offRecHash     = 4  // u64 xxhash64 of the key
	offRecKey      = 12 // key bytes
)

// minRecordLen is the smallest valid record: header and a one-byte key.
const minRecordLen = RecordHeaderLen + 1

// RecordFlags say how a record's key is matched. Exactly one of RecordExact
// and RecordPrefix is set; other bits are reserved.
type RecordFlags uint8

// Record flags.
const (
	RecordExact  RecordFlags = 1 << 0 // invalidate exactly this key
	RecordPrefix RecordFlags = 1 << 1 // invalidate every key starting with Key
)

func validRecordFlags(f RecordFlags) bool { return f == RecordExact || f == RecordPrefix }

// Record is one decoded invalidation.
type Record struct {
	Flags RecordFlags
	Hash  uint64 // xxhash64 of Key (of the prefix for RecordPrefix)
	// Key is a view into the frame buffer, valid only while that buffer
	// is; its capacity is capped so appending to it never overwrites the
	// frame. Copy it to keep it.
	Key []byte
}

// ValidateKey reports whether key may be carried in a record:
// ErrEmptyKey or ErrKeyTooLong, else nil. It does not allocate.
func ValidateKey(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrEmptyKey
	case len(key) > MaxKeyLen:
		return ErrKeyTooLong
	}
	return nil
}

// RecordLen returns the encoded length of a record with a keyLen-byte key.
func RecordLen(keyLen int) int { return RecordHeaderLen + keyLen }

// AppendRecord appends a record for key to dst. It assumes the caller has
// checked key with ValidateKey and flags is RecordExact or RecordPrefix:
// it never panics, but an invalid record it writes fails ParseRecord. It
// does not allocate when dst has RecordLen(len(key)) bytes spare.
func AppendRecord(dst []byte, key []byte, flags RecordFlags) []byte {
	var h [RecordHeaderLen]byte
	binary.BigEndian.PutUint16(h[offRecKeyLen:], uint16(len(key)))
	h[offRecFlags] = uint8(flags)
	binary.BigEndian.PutUint64(h[offRecHash:], xxhash.Sum64(key))
	dst = append(dst, h[:]...)
	return append(dst, key...)
}

// ParseRecord decodes the record at the start of b. n is the number of
// bytes it occupies. Errors: ErrShort, ErrEmptyKey, ErrKeyTooLong,
// ErrBadRecordFlags, ErrReserved, ErrBadHash. r.Key is a view into b. It
// does not allocate.
func ParseRecord(b []byte) (r Record, n int, err error) {
	if len(b) < RecordHeaderLen {
		return Record{}, 0, ErrShort
	}
	keyLen := int(binary.BigEndian.Uint16(b[offRecKeyLen:]))
	if keyLen == 0 {
		return Record{}, 0, ErrEmptyKey
	}
	if keyLen > MaxKeyLen {
		return Record{}, 0, ErrKeyTooLong
	}
	r.Flags = RecordFlags(b[offRecFlags])
	if !validRecordFlags(r.Flags) {
		return Record{}, 0, ErrBadRecordFlags
	}
	if b[offRecReserved] != 0 {
		return Record{}, 0, ErrReserved
	}
	n = RecordLen(keyLen)
	if len(b) < n {
		return Record{}, 0, ErrShort
	}
	r.Hash = binary.BigEndian.Uint64(b[offRecHash:])
	r.Key = b[offRecKey:n:n]
	if xxhash.Sum64(r.Key) != r.Hash {
		return Record{}, 0, ErrBadHash
	}
	return r, n, nil
}

// RecordIter walks the records of a DATA payload without copying:
//
//	it := codec.NewRecordIter(payload, h.Count)
//	for r, ok := it.Next(); ok; r, ok = it.Next() {
//		use(r.Key) // view, valid while the frame buffer is
//	}
//	if err := it.Err(); err != nil { ... }
//
// Records yielded before an error are valid; call ValidateRecords first
// when nothing may be applied from a malformed frame.
type RecordIter struct {
	b    []byte
	left int
	err  error
}

// NewRecordIter returns an iterator over count records in payload. A count
// of zero is ErrBadLength (a DATA frame carries at least one record); a
// count the payload cannot hold is ErrTooManyRecords. It does not allocate.
func NewRecordIter(payload []byte, count uint16) RecordIter {
	it := RecordIter{b: payload, left: int(count)}
	switch {
	case count == 0:
		it.err = ErrBadLength
	case int(count) > len(payload)/minRecordLen:
		it.err = ErrTooManyRecords
	}
	return it
}

// Next returns the next record. ok is false at the end or on an error
// (see Err). It does not allocate.
func (it *RecordIter) Next() (r Record, ok bool) {
	if it.err != nil {
		return Record{}, false
	}
	if it.left == 0 {
		if len(it.b) != 0 {
			it.err = ErrBadLength // trailing bytes after the last record
			it.b = nil
		}
		return Record{}, false
	}
	if len(it.b) == 0 {
		it.err = ErrTooManyRecords
		return Record{}, false
	}
	r, n, err := ParseRecord(it.b)
	if err != nil {
		it.err = err
		return Record{}, false
	}
	it.b = it.b[n:]
	it.left--
	return r, true
}

// Err returns the error that stopped the iteration: nil after a clean end,
// where count records consumed the payload exactly. Before Next has
// returned false it reports only errors already found.
func (it *RecordIter) Err() error { return it.err }

// ValidateRecords checks a whole DATA payload of count records: the same
// checks as a full RecordIter pass, without yielding anything. It does not
// allocate.
func ValidateRecords(payload []byte, count uint16) error {
	it := NewRecordIter(payload, count)
	for _, ok := it.Next(); ok; _, ok = it.Next() {
	}
	return it.Err()
}
