package bottle

/*
#include <bottle.h>
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"unsafe"
)

// Endpoint is a smolvm serve to talk to, instead of running the local
// smolvm CLI: a Bottle opened or launched WithEndpoint does every
// operation through serve's HTTP API, with the same results.
//
// What differs at an endpoint:
//   - ExecClaude with tty true runs claude on serve's interactive route,
//     with its arguments byte for byte, the caller's terminal in raw mode
//     for the session, and claude's stderr merged into its stdout, as on
//     any terminal.
//   - WithStdout and WithStderr Writers get the output in pieces fetched
//     about every 0.2 s, not as the guest writes it.
//   - A command whose caller vanished without stopping it (a process
//     killed in the middle of an Exec) is killed in the guest about a
//     minute later (through the CLI, at once).
//   - A machine launched at an endpoint carries no labels (serve keeps
//     none): it is recorded on this host instead, and Reap does not see
//     it; ReapAt does.
//   - BOTTLE_SMOLVM and PATH are not read: no smolvm runs on this host.
//
// An Endpoint holds a C handle. Close frees it; an Endpoint that becomes
// unreachable without Close is freed by a finalizer. Bottles keep what
// they need of it, so it may be closed as soon as Open or Launch has
// returned, without affecting them. An Endpoint is safe for concurrent use
// by many goroutines; Close waits for the Open, Launch or ReapAt calls
// using it to be done with it.
type Endpoint struct {
	url string

	mu sync.RWMutex // read-held by each use of c, held by Close
	c  *C.bottle_endpoint
}

// EndpointOption configures NewEndpoint.
type EndpointOption func(*endpointOptions)

type endpointOptions struct {
	tls *tlsFiles
}

type tlsFiles struct {
	ca, cert, key string
}

// WithTLS gives an https:// endpoint its mutual-TLS material, three PEM
// files read by NewEndpoint: caFile, the CA certificate(s) that serve's
// certificate must chain to (its host name must match the URL's);
// certFile, this client's certificate (chain), which serve checks
// against its SMOLVM_SERVE_TLS_CLIENT_CA; keyFile, the client's private
// key. An https:// endpoint needs it before Open, Launch or ReapAt can
// use it; any other endpoint refuses it (ErrInvalidArgument naming ep),
// and so does a libbottle built without its tls cargo feature
// (ErrUnsupported).
func WithTLS(caFile, certFile, keyFile string) EndpointOption {
	return func(o *endpointOptions) { o.tls = &tlsFiles{caFile, certFile, keyFile} }
}

// NewEndpoint makes an Endpoint for the smolvm serve at url; nothing is
// contacted. url is one of:
//   - unix:/path/to/smolvm.sock (or unix:///path), the socket smolvm serve
//     listens on by default;
//   - https://host:port, serve's TCP listener with mutual TLS (give the
//     certificates WithTLS);
//   - http://127.0.0.1:port, plain HTTP, allowed only to a loopback
//     address because serve has no other authentication.
//
// Errors: ErrInvalidArgument, for a url that is none of those (the message
// starts with url and says why), for WithTLS on an endpoint that is not
// https:// (naming ep), or for a TLS file without the PEM it should hold
// (naming ca_file, cert_file or key_file); ErrIO for a TLS file that
// cannot be read; ErrUnsupported for WithTLS when libbottle was built
// without its tls cargo feature.
func NewEndpoint(url string, opts ...EndpointOption) (*Endpoint, error) {
	const op = "endpoint"
	var o endpointOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkNoNUL(op, "url", url); err != nil {
		return nil, err
	}
	if o.tls != nil {
		for _, f := range []struct{ name, path string }{
			{"ca_file", o.tls.ca}, {"cert_file", o.tls.cert}, {"key_file", o.tls.key},
		} {
			if err := checkNoNUL(op, f.name, f.path); err != nil {
				return nil, err
			}
		}
	}

	var strs cStrings
	defer strs.free()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var h *C.bottle_endpoint
	if s := C.bottle_endpoint_new(strs.of(url), &h); s != C.BOTTLE_OK {
		return nil, lastError(op, s)
	}
	if o.tls != nil {
		s := C.bottle_endpoint_set_tls(h, strs.of(o.tls.ca), strs.of(o.tls.cert), strs.of(o.tls.key))
		if s != C.BOTTLE_OK {
			err := lastError(op, s)
			C.bottle_endpoint_free(h)
			return nil, err
		}
	}
	liveHandles.Add(1)
	ep := &Endpoint{url: url, c: h}
	runtime.SetFinalizer(ep, (*Endpoint).finalize)
	return ep, nil
}

// URL returns the url the Endpoint was made from. It still answers after
// Close.
func (ep *Endpoint) URL() string {
	return ep.url
}

// Close frees the Endpoint's C handle, after the Open, Launch or ReapAt
// calls using it are done with it. Bottles opened or launched at it are
// not affected. Later Opens, Launches and ReapAts with it return an error
// matching ErrClosed (and ErrInvalidArgument); closing again does nothing.
// It always returns nil, and returns an error only to be an io.Closer.
func (ep *Endpoint) Close() error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.c == nil {
		return nil
	}
	runtime.SetFinalizer(ep, nil)
	C.bottle_endpoint_free(ep.c)
	ep.c = nil
	liveHandles.Add(-1)
	return nil
}

// finalize frees the handle of an Endpoint dropped without Close. Nothing
// can be using it: every use keeps its Endpoint reachable.
func (ep *Endpoint) finalize() {
	C.bottle_endpoint_free(ep.c)
	liveHandles.Add(-1)
}

// acquire returns the C handle for one use, which holds the Endpoint's
// read lock until release; NULL for a nil Endpoint (the CLI, or for
// ReapAt the C library's own refusal). A closed Endpoint gives an error
// matching ErrClosed.
func (ep *Endpoint) acquire(op string) (*C.bottle_endpoint, error) {
	if ep == nil {
		return nil, nil
	}
	ep.mu.RLock()
	if ep.c == nil {
		ep.mu.RUnlock()
		return nil, &Error{Op: op, Status: StatusInvalidArgument, Message: "ep: the endpoint is closed", closed: true}
	}
	return ep.c, nil
}

// release ends a use begun by a successful acquire.
func (ep *Endpoint) release() {
	if ep != nil {
		ep.mu.RUnlock()
	}
}

// WithEndpoint opens (Open) or launches (Launch, WithBottle) the machine
// at the smolvm serve of ep instead of through the local smolvm CLI; see
// Endpoint for what differs there. A nil ep means the CLI, the default.
// The Bottle keeps what it needs: ep may be closed once Open or Launch
// has returned. A closed ep makes Open and Launch return an error
// matching ErrClosed.
//
// Open at an endpoint checks its arguments as Open does and does not
// contact serve either. Launch at an endpoint records the machine in a
// file on this host ($XDG_STATE_HOME/libbottle/serve, else
// ~/.local/state/libbottle/serve), for ReapAt, and fails with ErrIO if it
// cannot; WithMachineEnv's variables are sent with every command, since
// serve does not apply them to its commands itself.
func WithEndpoint(ep *Endpoint) BottleOption {
	return endpointOption{ep}
}

type endpointOption struct{ ep *Endpoint }

func (e endpointOption) applyOpen(o *openOptions)     { o.endpoint = e.ep }
func (e endpointOption) applyLaunch(o *launchOptions) { o.endpoint = e.ep }

// openAt is Open at ep, on a goroutine already locked to its thread.
func openAt(op string, ep *Endpoint, machine, prompt *C.char) (*C.bottle, error) {
	h, err := ep.acquire(op)
	if err != nil {
		return nil, err
	}
	defer ep.release()
	var b *C.bottle
	if s := C.bottle_open_at(h, machine, prompt, &b); s != C.BOTTLE_OK {
		return nil, lastError(op, s)
	}
	return b, nil
}

// ReapAt is Reap for the machines launched at the smolvm serve of ep.
// serve keeps no labels: it deletes the machines that this user launched
// at ep from this host (recorded then, see WithEndpoint) and whose owning
// process is gone, and returns their names. It never touches machines
// launched from another host or by another user, nor one made again under
// the same name since (its creation time differs from the record's); a
// machine whose record was lost is not found. Machines launched through
// the CLI are Reap's.
//
// A machine serve refuses to delete makes ReapAt return an ErrSmolvm
// error after trying the others; the names returned are then those
// deleted. ErrIO means serve is unreachable or the records unreadable.
// A ctx already done returns ctx.Err() without looking; a ctx that ends
// during ReapAt stops it and returns ctx.Err() with the names deleted so
// far. ReapAts at once are safe. A nil ep is ErrInvalidArgument (naming
// ep), a closed one an error matching ErrClosed.
func ReapAt(ctx context.Context, ep *Endpoint) ([]string, error) {
	const op = "reap"
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := ep.acquire(op)
	if err != nil {
		return nil, err
	}
	defer ep.release()
	return reap(ctx, op, func(c *C.bottle_call_options, removed *C.bottle_names) C.enum_bottle_status {
		return C.bottle_reap_at(h, c, removed)
	})
}

// reap runs one reap call, f, with call options stopped by ctx, and
// returns the names it removed. The goroutine is locked to its thread.
func reap(ctx context.Context, op string, f func(*C.bottle_call_options, *C.bottle_names) C.enum_bottle_status) ([]string, error) {
	c, w, free, err := callOptions(ctx, op)
	if err != nil {
		return nil, err
	}
	defer free()
	var removed C.bottle_names
	failed := stopped(ctx, op, f(c, &removed), w)
	defer C.bottle_names_free(&removed)
	names := make([]string, 0, int(removed.count))
	for _, p := range unsafe.Slice(removed.names, int(removed.count)) {
		names = append(names, C.GoString(p))
	}
	return names, failed
}
