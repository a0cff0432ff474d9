// Package fuzz holds the go test -fuzz targets for every decoder of the
// wire format (codec). It has no code of its own: the targets and their
// encoder-generated seed corpora (testdata/fuzz/<FuzzName>/) live in its
// tests. Run one with:
//
//	go test -run '^$' -fuzz '^FuzzParseFrame$' -fuzztime 60s ./fuzz
//
// See README.md for the list of targets and the properties each checks.
package fuzz
