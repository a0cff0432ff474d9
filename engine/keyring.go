package engine

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/warpmesh/warpmesh/codec"
)

// KeySize is the length of every keyring key: AES-256.
const KeySize = 32

// Keyring errors.
var (
	ErrKeySize    = errors.New("engine: keyring keys must be 32 bytes")
	ErrNoKey      = errors.New("engine: key not in keyring")
	ErrPrimaryKey = errors.New("engine: cannot remove the primary key")
	ErrEmptyRing  = errors.New("engine: keyring needs at least one key")
)

// Keyring holds the shared secrets that authenticate (and encrypt) every
// frame. The primary key seals what this node sends; every installed key
// opens what it receives, so a cluster rotates keys without downtime:
// install the new key everywhere, make it primary everywhere, then remove
// the old one. A Keyring is safe for concurrent use and may be changed while
// nodes use it.
//
// Frames are sealed with AES-256-GCM. Each (origin, boot epoch) derives its
// own subkey, HMAC-SHA256(key, "warpmesh/v1" ‖ origin ‖ epoch), and uses the
// frame's packet number — unique within an epoch — as the nonce, so a nonce
// never repeats under a key. The header (with the hop count zeroed, since
// relays change it) is the associated data; the payload is encrypted.
//
// Freshness. A sealed frame is authentic, not necessarily new: frames
// captured earlier can be replayed to a node that never saw them. Within
// an epoch the replay window drops what a node has seen. Beyond that,
// membership never moves on a frame alone: a member is added, brought
// back from dead or left, given a new epoch or a new address only by a
// RESPONSE to a challenge this node issued within the last 10 seconds
// (validate.go), so replayed ALIVEs of a dead node or of an old epoch
// change nothing, and a replayed LEAVE carries a packet number older than
// the member's last trusted one. The only clock involved is the
// challenger's own (it writes the cookie's time and reads it back): nodes
// need not agree on time. Not covered: a replayed DATA frame of an origin
// epoch the node never saw is applied once (an extra invalidation, never a
// stale read).
type Keyring struct {
	mu   sync.Mutex
	keys atomic.Pointer[keySet]
}

// keySet is an immutable snapshot: keys[0] is primary.
type keySet struct {
	keys [][KeySize]byte
	gen  uint64
}

var keyringGen atomic.Uint64

// NewKeyring makes a keyring whose first key is primary.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, ErrEmptyRing
	}
	ks := &keySet{gen: keyringGen.Add(1)}
	for _, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w (got %d)", ErrKeySize, len(k))
		}
		if ks.index(k) < 0 {
			ks.keys = append(ks.keys, [KeySize]byte(k))
		}
	}
	r := &Keyring{}
	r.keys.Store(ks)
	return r, nil
}

func (s *keySet) index(k []byte) int {
	for i := range s.keys {
		if subtle.ConstantTimeCompare(s.keys[i][:], k) == 1 {
			return i
		}
	}
	return -1
}

func (r *Keyring) update(fn func(old *keySet) (*keySet, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ks, err := fn(r.keys.Load())
	if err != nil {
		return err
	}
	ks.gen = keyringGen.Add(1)
	r.keys.Store(ks)
	return nil
}

// Install adds key as a secondary key: frames sealed with it are accepted.
func (r *Keyring) Install(key []byte) error {
	if len(key) != KeySize {
		return ErrKeySize
	}
	return r.update(func(old *keySet) (*keySet, error) {
		ks := &keySet{keys: append([][KeySize]byte(nil), old.keys...)}
		if old.index(key) < 0 {
			ks.keys = append(ks.keys, [KeySize]byte(key))
		}
		return ks, nil
	})
}

// UsePrimary makes an installed key the one that seals outgoing frames.
func (r *Keyring) UsePrimary(key []byte) error {
	return r.update(func(old *keySet) (*keySet, error) {
		i := old.index(key)
		if i < 0 {
			return nil, ErrNoKey
		}
		ks := &keySet{keys: make([][KeySize]byte, 0, len(old.keys))}
		ks.keys = append(ks.keys, old.keys[i])
		for j, k := range old.keys {
			if j != i {
				ks.keys = append(ks.keys, k)
			}
		}
		return ks, nil
	})
}

// Remove uninstalls a secondary key.
func (r *Keyring) Remove(key []byte) error {
	return r.update(func(old *keySet) (*keySet, error) {
		i := old.index(key)
		switch {
		case i < 0:
			return nil, ErrNoKey
		case i == 0:
			return nil, ErrPrimaryKey
		}
		ks := &keySet{keys: make([][KeySize]byte, 0, len(old.keys)-1)}
		for j, k := range old.keys {
			if j != i {
				ks.keys = append(ks.keys, k)
			}
		}
		return ks, nil
	})
}

// Keys returns copies of the installed keys, primary first.
func (r *Keyring) Keys() [][]byte {
	ks := r.keys.Load()
	out := make([][]byte, len(ks.keys))
	for i := range ks.keys {
		out[i] = append([]byte(nil), ks.keys[i][:]...)
	}
	return out
}

// deriveAEAD builds the AES-256-GCM for one origin epoch under key.
// Allocates; called once per (origin, epoch, key).
func deriveAEAD(key *[KeySize]byte, origin, epoch uint64) cipher.AEAD {
	mac := hmac.New(sha256.New, key[:])
	var info [11 + 16]byte
	copy(info[:], "warpmesh/v1")
	binary.BigEndian.PutUint64(info[11:], origin)
	binary.BigEndian.PutUint64(info[19:], epoch)
	mac.Write(info[:])
	sub := mac.Sum(nil)
	block, err := aes.NewCipher(sub)
	if err != nil {
		panic("engine: aes: " + err.Error()) // 32-byte key: cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("engine: gcm: " + err.Error()) // standard nonce and tag: cannot fail
	}
	return aead
}

// nonce turns a packet number into a GCM nonce.
func nonce(dst *[12]byte, packet uint64) []byte {
	*dst = [12]byte{}
	binary.BigEndian.PutUint64(dst[4:], packet)
	return dst[:]
}

// sealer seals this node's frames with the primary key. It is rebuilt when
// the keyring changes. Safe for concurrent use (GCM is stateless).
type sealer struct {
	ring  *Keyring
	id    uint64
	epoch uint64
	cur   atomic.Pointer[sealKey]
	mu    sync.Mutex
}

type sealKey struct {
	gen  uint64
	aead cipher.AEAD
}

func (s *sealer) aead() cipher.AEAD {
	ks := s.ring.keys.Load()
	if k := s.cur.Load(); k != nil && k.gen == ks.gen {
		return k.aead
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.cur.Load(); k != nil && k.gen == ks.gen {
		return k.aead
	}
	k := &sealKey{gen: ks.gen, aead: deriveAEAD(&ks.keys[0], s.id, s.epoch)}
	s.cur.Store(k)
	return k.aead
}

// sealScratch holds the associated data and nonce of one seal or open. It
// is owned by the calling goroutine: buffers passed to the AEAD interface
// escape, and stack arrays would be allocated per frame.
type sealScratch struct {
	aad   [codec.HeaderLen]byte
	nonce [12]byte
}

// seal encrypts frame's payload in place and appends the tag. frame must
// carry FlagAuth and its packet number, and have TagLen spare capacity.
// Does not allocate.
func (s *sealer) seal(frame []byte, packet uint64, sc *sealScratch) []byte {
	codec.HeaderAAD(&sc.aad, frame)
	payload := frame[codec.HeaderLen:]
	out := s.aead().Seal(payload[:0], nonce(&sc.nonce, packet), payload, sc.aad[:])
	return frame[:codec.HeaderLen+len(out)]
}

// maxDerivedKeys caps the opener's cache of derived keys, one entry per
// (origin, epoch). Only an entry whose keys opened a frame is kept, so a
// flood of frames that merely claim authentication, from random origins and
// epochs, costs a derivation each but grows nothing; the cache holds real
// members' epochs. When full, an arbitrary entry (map order) makes room: a
// member evicted this way re-derives on its next frame.
const maxDerivedKeys = MaxMembers

// opener opens frames from other origins; owned by the receive worker.
type opener struct {
	ring    *Keyring
	cache   map[[2]uint64]*openKeys
	scratch []byte // codec.MaxFrameSize
	sc      sealScratch
}

type openKeys struct {
	gen   uint64
	aeads []cipher.AEAD // parallel to keySet.keys
	last  int           // index that opened the last frame
}

// open authenticates and decrypts a sealed frame into the opener's scratch
// buffer, returning the plaintext payload, valid until the next open. It
// tries the key that last worked for this origin first. Allocates only on
// the first frame of an origin epoch (or after the keyring changed), and
// caches the derived keys only once they opened something (see
// maxDerivedKeys).
func (o *opener) open(h *codec.Header, frame []byte) ([]byte, bool) {
	ks := o.ring.keys.Load()
	id := [2]uint64{h.Origin, h.Epoch}
	ok := o.cache[id]
	if ok == nil || ok.gen != ks.gen {
		fresh := &openKeys{gen: ks.gen, aeads: make([]cipher.AEAD, len(ks.keys))}
		for i := range ks.keys {
			fresh.aeads[i] = deriveAEAD(&ks.keys[i], h.Origin, h.Epoch)
		}
		pt, opened := o.try(fresh, h, frame)
		if opened {
			if _, had := o.cache[id]; !had && len(o.cache) >= maxDerivedKeys {
				for k := range o.cache {
					delete(o.cache, k)
					break
				}
			}
			o.cache[id] = fresh
		}
		return pt, opened
	}
	return o.try(ok, h, frame)
}

// try opens frame with the keys of ok, the last good one first.
func (o *opener) try(ok *openKeys, h *codec.Header, frame []byte) ([]byte, bool) {
	codec.HeaderAAD(&o.sc.aad, frame)
	n := nonce(&o.sc.nonce, h.Packet)
	sealed := frame[codec.HeaderLen : codec.HeaderLen+int(h.PayloadLen)+codec.TagLen]
	for k := 0; k < len(ok.aeads); k++ {
		i := (ok.last + k) % len(ok.aeads)
		// Plaintext goes to scratch, not in place: a failed Open may clear
		// its destination, and the next key needs the ciphertext intact
		// (as does a relay, which forwards the sealed frame).
		if pt, err := ok.aeads[i].Open(o.scratch[:0], n, sealed, o.sc.aad[:]); err == nil {
			ok.last = i
			return pt, true
		}
	}
	return nil, false
}
