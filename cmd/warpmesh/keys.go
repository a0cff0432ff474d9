package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// keySize is the length of every mesh key: engine keyrings seal with
// AES-256-GCM (standard library) and take 32-byte keys.
const keySize = 32

// errNoKeys is returned for a key file without a single key.
var errNoKeys = errors.New("no keys in file")

// readKeyFile reads one key per line, as 64 hex digits or base64 (standard
// or URL alphabet, padded or not) of 32 bytes. Blank lines and lines
// starting with # are skipped. The first key is the primary: it seals what
// this node sends; every key opens.
func readKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys [][]byte
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := parseKey(s)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: %w", path, errNoKeys)
	}
	return keys, nil
}

func parseKey(s string) ([]byte, error) {
	if len(s) == 2*keySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != keySize {
				return nil, fmt.Errorf("key is %d bytes, want %d", len(k), keySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("not a %d-byte key in hex (64 digits) or base64", keySize)
}
