package codec

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func xxhashOf(s string) uint64 { return xxhash.Sum64String(s) }
