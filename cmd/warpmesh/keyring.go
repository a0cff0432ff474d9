package main

import (
	"fmt"

	"github.com/warpmesh/warpmesh/engine"
)

// authModes names the values of --auth.
var authModes = map[string]engine.AuthMode{
	"required":         engine.AuthRequired,
	"accept-plaintext": engine.AuthAcceptPlaintext,
	"send-plaintext":   engine.AuthSendPlaintext,
}

// setKeyring installs keys (primary first) in o with the --auth mode.
func setKeyring(o *engine.Options, keys [][]byte, auth string) error {
	mode, ok := authModes[auth]
	if !ok {
		return usageErrorf("invalid --auth=%q: want required, accept-plaintext or send-plaintext", auth)
	}
	kr, err := engine.NewKeyring(keys...)
	if err != nil {
		return &usageError{fmt.Errorf("invalid --key-file: %w", err)}
	}
	o.Keyring, o.Auth = kr, mode
	return nil
}
