package bottle

/*
#include <bottle.h>
#include <stdint.h>
#include <stdlib.h>

extern void goBottleProgress(uintptr_t sink, bottle_progress *progress); // callback.go

static void go_bottle_progress(void *sink, const bottle_progress *progress) {
	goBottleProgress((uintptr_t)sink, (bottle_progress *)progress);
}

static enum bottle_status go_bottle_copy_options_set_progress(bottle_copy_options *opts, uintptr_t sink) {
	return bottle_copy_options_set_progress_fn(opts, go_bottle_progress, (void *)sink);
}
*/
import "C"

import (
	"context"
	"fmt"
	"io/fs"
	"runtime/cgo"
	"unsafe"
)

// CopyOption configures CopyIn.
type CopyOption func(*copyOptions)

type copyOptions struct {
	mode      *fs.FileMode
	ownerIDs  *[2]int // uid, gid
	ownerUser *string
	progress  func(Progress)
}

// WithMode gives every file copied these permission bits instead of 0644
// (for a single file) or each file's host permissions (in a directory):
// mode.Perm(), plus fs.ModeSetuid, fs.ModeSetgid and fs.ModeSticky, as
// os.Chmod takes them. Any other bit is ErrInvalidArgument (naming mode).
// Directories are not affected.
func WithMode(mode fs.FileMode) CopyOption {
	return func(o *copyOptions) { o.mode = &mode }
}

// WithOwner gives everything copied, directories included, to the numeric
// uid and gid in the guest instead of root. It replaces WithOwnerUser.
func WithOwner(uid, gid int) CopyOption {
	return func(o *copyOptions) { o.ownerIDs, o.ownerUser = &[2]int{uid, gid}, nil }
}

// WithOwnerUser gives everything copied, directories included, to the
// guest user name and its primary group, looked up in the guest at copy
// time; WithOwnerUser("node") lets the agent write what it was given. It
// replaces WithOwner.
func WithOwnerUser(name string) CopyOption {
	return func(o *copyOptions) { o.ownerIDs, o.ownerUser = nil, &name }
}

// WithProgress calls f before the first file is copied and after each one,
// on the goroutine that called CopyIn, inside the call. A panic in f is
// raised again by CopyIn once the copy has ended; f is not called again
// after one.
func WithProgress(f func(Progress)) CopyOption {
	return func(o *copyOptions) { o.progress = f }
}

// Progress is how far a CopyIn has got. The totals are known before the
// first file is copied.
type Progress struct {
	FilesDone, FilesTotal int64
	BytesDone, BytesTotal int64
}

// progressSink is the Go side of a bottle_progress_fn.
type progressSink struct {
	f    func(Progress)
	trap panicTrap
}

func (s *progressSink) report(p Progress) {
	if !s.trap.caught() {
		s.trap.catch(func() { s.f(p) })
	}
}

// chmodBits turns a Go file mode into chmod's bits, or rejects it.
func chmodBits(op string, mode fs.FileMode) (uint32, error) {
	const allowed = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	if extra := mode &^ allowed; extra != 0 {
		return 0, invalid(op, "mode", fmt.Sprintf("%v has bits other than permissions, setuid, setgid and sticky", mode))
	}
	bits := uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits, nil
}

// cCopyOptions is the C side of a CopyIn's options, for one call.
type cCopyOptions struct {
	c        *C.bottle_copy_options
	progress *progressSink
	handle   cgo.Handle // progress's
}

// toC makes the C options. Free them with free once the call has returned.
func (o *copyOptions) toC(op string) (*cCopyOptions, error) {
	var mode uint32
	if o.mode != nil {
		var err error
		if mode, err = chmodBits(op, *o.mode); err != nil {
			return nil, err
		}
	}
	if o.ownerIDs != nil {
		if err := checkUint32(op, "uid", o.ownerIDs[0]); err != nil {
			return nil, err
		}
		if err := checkUint32(op, "gid", o.ownerIDs[1]); err != nil {
			return nil, err
		}
	}
	if o.ownerUser != nil {
		if err := checkNoNUL(op, "user", *o.ownerUser); err != nil {
			return nil, err
		}
	}
	// Made even for the defaults: a ctx that can end attaches its cancel
	// token to them.
	c := &cCopyOptions{}
	if s := C.bottle_copy_options_new(&c.c); s != C.BOTTLE_OK {
		return nil, lastError(op, s)
	}
	var strs cStrings
	defer strs.free()
	set := setter{op: op}
	if o.mode != nil {
		set.do(C.bottle_copy_options_set_mode(c.c, C.uint32_t(mode)))
	}
	if o.ownerIDs != nil {
		set.do(C.bottle_copy_options_set_owner_ids(c.c, C.uint32_t(o.ownerIDs[0]), C.uint32_t(o.ownerIDs[1])))
	}
	if o.ownerUser != nil {
		set.do(C.bottle_copy_options_set_owner_user(c.c, strs.of(*o.ownerUser)))
	}
	if o.progress != nil {
		c.progress = &progressSink{f: o.progress}
		c.handle = cgo.NewHandle(c.progress)
		set.do(C.go_bottle_copy_options_set_progress(c.c, C.uintptr_t(c.handle)))
	}
	if set.err != nil {
		c.free()
		return nil, set.err
	}
	return c, nil
}

func (c *cCopyOptions) free() {
	C.bottle_copy_options_free(c.c)
	if c.progress != nil {
		c.handle.Delete()
	}
}

// repanic raises a panic that the progress function raised during the
// call.
func (c *cCopyOptions) repanic() {
	if c.progress != nil {
		c.progress.trap.repanic()
	}
}

// CopyIn copies hostPath into the machine at guestPath.
//
// A regular file is created or replaced at guestPath, whose parent
// directory must exist; by default it is owned by root with mode 0644. A
// directory is copied recursively: guestPath becomes a directory (created
// with its parents if missing) holding the same tree, by default owned by
// root with each file's host permissions. The whole tree is checked before
// anything is copied: entries must be regular files or directories whose
// names are UTF-8 without ':' (symbolic links and special files are
// refused). A failure part-way leaves what was already copied in the
// guest. WithMode, WithOwner, WithOwnerUser and WithProgress change this.
//
// hostPath may hold any bytes but NUL, a ':' or a leading '-' included:
// smolvm never parses it, as the library opens the file and hands smolvm
// the open descriptor. guestPath must be absolute and without ':'.
//
// A ctx already done returns ctx.Err() without copying anything; a ctx
// that ends during the copy stops smolvm and everything it started, and
// CopyIn returns ctx.Err(), leaving in the guest what was copied before
// and the file being copied as smolvm left it.
//
// Errors: ErrInvalidArgument (naming host_path, guest_path, mode, uid, gid
// or user; also for a device, FIFO or symbolic link, and for an owner user
// the guest does not know); ErrIO when the host file cannot be opened;
// ErrSmolvm when smolvm failed (unknown or stopped machine, missing guest
// directory, a symbolic link in the guest where a directory goes);
// ErrSmolvmNotFound; ErrClosed.
func (b *Bottle) CopyIn(ctx context.Context, hostPath, guestPath string, opts ...CopyOption) error {
	const op = "copy in"
	var o copyOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkNoNUL(op, "host_path", hostPath); err != nil {
		return err
	}
	if err := checkNoNUL(op, "guest_path", guestPath); err != nil {
		return err
	}

	_, err := call(ctx, b, op, func(h *C.bottle) (struct{}, error) {
		copts, err := o.toC(op)
		if err != nil {
			return struct{}{}, err
		}
		defer copts.free()
		w, err := watch(ctx, op, func(t *C.bottle_cancel) C.enum_bottle_status {
			return C.bottle_copy_options_set_cancel(copts.c, t)
		})
		if err != nil {
			return struct{}{}, err
		}
		cHost := C.CString(hostPath)
		defer C.free(unsafe.Pointer(cHost))
		cGuest := C.CString(guestPath)
		defer C.free(unsafe.Pointer(cGuest))
		s := C.bottle_cp_in_with(h, cHost, cGuest, copts.c)
		failed := stopped(ctx, op, s, w)
		copts.repanic()
		return struct{}{}, failed
	})
	return err
}

// CopyOut copies the regular guest file guestPath out of the machine to
// hostPath.
//
// guestPath must be absolute and without ':'. hostPath may hold any bytes
// but NUL; its directory must exist. The file is written under a temporary
// name in that directory and renamed over hostPath only once smolvm has
// succeeded, so an existing file is replaced whole or left untouched. A new
// file gets mode 0666 less the umask.
//
// A ctx already done returns ctx.Err() without copying anything; a ctx
// that ends during the copy stops smolvm and everything it started, leaves
// the host file untouched, and CopyOut returns ctx.Err().
//
// Errors: ErrInvalidArgument (naming guest_path or host_path); ErrSmolvm
// when smolvm failed (unknown or stopped machine, missing guest file); ErrIO
// when the host directory is missing or not writable; ErrSmolvmNotFound;
// ErrClosed.
func (b *Bottle) CopyOut(ctx context.Context, guestPath, hostPath string) error {
	const op = "copy out"
	if err := checkNoNUL(op, "guest_path", guestPath); err != nil {
		return err
	}
	if err := checkNoNUL(op, "host_path", hostPath); err != nil {
		return err
	}

	_, err := call(ctx, b, op, func(h *C.bottle) (struct{}, error) {
		var c *C.bottle_copy_options
		if s := C.bottle_copy_options_new(&c); s != C.BOTTLE_OK {
			return struct{}{}, lastError(op, s)
		}
		defer C.bottle_copy_options_free(c)
		w, err := watch(ctx, op, func(t *C.bottle_cancel) C.enum_bottle_status {
			return C.bottle_copy_options_set_cancel(c, t)
		})
		if err != nil {
			return struct{}{}, err
		}
		cGuest := C.CString(guestPath)
		defer C.free(unsafe.Pointer(cGuest))
		cHost := C.CString(hostPath)
		defer C.free(unsafe.Pointer(cHost))
		return struct{}{}, stopped(ctx, op, C.bottle_cp_out_with(h, cGuest, cHost, c), w)
	})
	return err
}
