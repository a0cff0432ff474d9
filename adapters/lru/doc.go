// Package lruadapter lets a golang-lru/v2 cache
// (github.com/hashicorp/golang-lru/v2) that a service already runs be
// invalidated by a Warp Mesh: a key another member invalidates is dropped
// from it, and a Gap (invalidations may have been missed) empties it. The
// cache itself is unchanged and still used directly; see presets.Attach
// for the rules.
//
// It is a module of its own so that github.com/warpmesh/warpmesh never
// depends on golang-lru.
package lruadapter
