//go:build !cgo

package bottle

// This package is a cgo binding of libbottle, a C library: it cannot be
// built with CGO_ENABLED=0, and every file but this one needs cgo. Without
// this file such a build would fail on the first symbol a program uses
// ("undefined: bottle.Open"); with it, the compiler's error names the
// cause. See README.md, "Finding the library".
var _ = bottle_needs_cgo_and_libbottle__build_with_CGO_ENABLED_1_and_pkg_config_finding_bottle
