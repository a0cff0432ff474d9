module github.com/warpmesh/warpmesh/adapters/otter

go 1.26.0

replace github.com/warpmesh/warpmesh => ../..

require (
	github.com/maypok86/otter/v2 v2.4.0
	github.com/warpmesh/warpmesh v0.0.0-00010101000000-000000000000
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
