module github.com/warpmesh/warpmesh/adapters/lru

go 1.26.0

replace github.com/warpmesh/warpmesh => ../..

require (
	github.com/hashicorp/golang-lru/v2 v2.0.7
	github.com/warpmesh/warpmesh v0.0.0-00010101000000-000000000000
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
