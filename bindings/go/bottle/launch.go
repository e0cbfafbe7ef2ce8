package bottle

/*
#include <bottle.h>
*/
import "C"

import (
	"context"
	"errors"
	"runtime"
)

type launchOptions struct {
	name, image, promptPath *string
	cpus, memoryMiB         int
	network                 bool
	volumes                 []volume
	env                     []envVar
	endpoint                *Endpoint
}

type volume struct {
	host, guest string
	readOnly    bool
}

// launchOption is a LaunchOption that only Launch takes.
type launchOption func(*launchOptions)

func (f launchOption) applyLaunch(o *launchOptions) { f(o) }

// WithName names the launched machine, by smolvm's rules (as for Open),
// instead of a generated "bottle-PID-N-HEX".
func WithName(name string) LaunchOption {
	return launchOption(func(o *launchOptions) { o.name = &name })
}

// WithImage boots the image given, an OCI reference such as the agent
// image (printable ASCII, no spaces, not starting with '-'), instead of
// smolvm's default.
func WithImage(image string) LaunchOption {
	return launchOption(func(o *launchOptions) { o.image = &image })
}

// WithCPUs gives the machine n virtual CPUs; 0 keeps smolvm's default.
func WithCPUs(n int) LaunchOption {
	return launchOption(func(o *launchOptions) { o.cpus = n })
}

// WithMemoryMiB gives the machine mib MiB of memory; 0 keeps smolvm's
// default.
func WithMemoryMiB(mib int) LaunchOption {
	return launchOption(func(o *launchOptions) { o.memoryMiB = mib })
}

// WithNetwork turns the guest's outbound network on or off (smolvm's
// --net); it is off by default.
func WithNetwork(enabled bool) LaunchOption {
	return launchOption(func(o *launchOptions) { o.network = enabled })
}

// WithVolume shares the host directory host into the guest at guest,
// read-only if readOnly. Both must be absolute and without ':' (smolvm's
// -v HOST:GUEST[:ro] is split at ':').
func WithVolume(host, guest string, readOnly bool) LaunchOption {
	return launchOption(func(o *launchOptions) { o.volumes = append(o.volumes, volume{host, guest, readOnly}) })
}

// WithMachineEnv adds name=value to the environment of every command in
// the machine, claude included: the bottle asks runuser to keep these
// variables through the login shell of each Exec and ExecClaude. Same rules
// as WithEnv, and likewise visible on smolvm's command line while the
// machine is created: no secrets here.
func WithMachineEnv(name, value string) LaunchOption {
	return launchOption(func(o *launchOptions) { o.env = append(o.env, envVar{name: name, value: value}) })
}

// check rejects what C strings and uint32_t cannot carry, naming the
// arguments as the C setters do; the setters check the rest.
func (o *launchOptions) check(op string) error {
	for _, s := range []struct {
		name  string
		value *string
	}{{"machine_name", o.name}, {"image", o.image}, {"prompt_path", o.promptPath}} {
		if s.value != nil {
			if err := checkNoNUL(op, s.name, *s.value); err != nil {
				return err
			}
		}
	}
	if err := checkUint32(op, "cpus", o.cpus); err != nil {
		return err
	}
	if err := checkUint32(op, "mib", o.memoryMiB); err != nil {
		return err
	}
	for _, v := range o.volumes {
		if err := checkNoNUL(op, "host_path", v.host); err != nil {
			return err
		}
		if err := checkNoNUL(op, "guest_path", v.guest); err != nil {
			return err
		}
	}
	if err := checkEnvNUL(op, o.env); err != nil {
		return err
	}
	return nil
}

// toC makes the C options; free them with C.bottle_launch_options_free.
// A closed endpoint gives an error matching ErrClosed.
func (o *launchOptions) toC(op string) (*C.bottle_launch_options, error) {
	ep, err := o.endpoint.acquire(op)
	if err != nil {
		return nil, err
	}
	// The options keep a copy of the endpoint.
	defer o.endpoint.release()
	var c *C.bottle_launch_options
	if s := C.bottle_launch_options_new(&c); s != C.BOTTLE_OK {
		return nil, lastError(op, s)
	}
	var strs cStrings
	defer strs.free()
	set := setter{op: op}
	if o.name != nil {
		set.do(C.bottle_launch_options_set_name(c, strs.of(*o.name)))
	}
	if o.image != nil {
		set.do(C.bottle_launch_options_set_image(c, strs.of(*o.image)))
	}
	set.do(C.bottle_launch_options_set_cpus(c, C.uint32_t(o.cpus)))
	set.do(C.bottle_launch_options_set_memory_mib(c, C.uint32_t(o.memoryMiB)))
	set.do(C.bottle_launch_options_set_network(c, C.bool(o.network)))
	for _, v := range o.volumes {
		set.do(C.bottle_launch_options_add_volume(c, strs.of(v.host), strs.of(v.guest), C.bool(v.readOnly)))
	}
	for _, e := range o.env {
		set.do(C.bottle_launch_options_add_env(c, strs.of(e.name), strs.of(e.value)))
	}
	if o.promptPath != nil {
		set.do(C.bottle_launch_options_set_prompt_path(c, strs.of(*o.promptPath)))
	}
	if ep != nil {
		set.do(C.bottle_launch_options_set_endpoint(c, ep))
	}
	if set.err != nil {
		C.bottle_launch_options_free(c)
		return nil, set.err
	}
	return c, nil
}

// Launch creates a machine as the options say, starts it, and returns a
// Bottle that owns it: Close stops and deletes the machine. Name tells the
// machine's name, generated ("bottle-PID-N-HEX") unless WithName sets one.
//
// The machine carries smolvm labels marking it as libbottle's and naming
// this process, so that Reap, run later by any process, deletes it should
// this one die without closing it. If the machine is created but fails to
// start, it is deleted again and the start's error returned. Defaults:
// smolvm's image, CPUs and memory, no network, no volumes, no environment,
// no prompt file (WithPromptPath), the local smolvm CLI (WithEndpoint).
//
// WithEndpoint launches the machine at a smolvm serve instead. serve keeps
// no labels: the machine is recorded in a file on this host instead, for
// ReapAt (Reap does not see it), and Launch fails with ErrIO if the record
// cannot be written.
//
// Launch blocks until the machine runs. A ctx already done returns
// ctx.Err() without creating anything; a ctx that ends during the launch
// stops it (smolvm and its process group, through the CLI), deletes the
// machine again if it was created, and Launch returns ctx.Err(). That
// deletion gets 5 seconds of its own; a machine not deleted by then stays,
// marked as this process's, for Reap (or ReapAt) once the process has
// exited.
//
// Errors: ErrInvalidArgument (naming name, machine_name, image, cpus, mib,
// host_path, guest_path, value or prompt_path, or ep for an https://
// Endpoint without WithTLS); ErrSmolvm, with smolvm's (or serve's)
// message, when the machine could not be created or started;
// ErrSmolvmNotFound; ErrIO; an error matching ErrClosed for a closed
// Endpoint.
func Launch(ctx context.Context, opts ...LaunchOption) (*Bottle, error) {
	const op = "launch"
	var o launchOptions
	for _, opt := range opts {
		opt.applyLaunch(&o)
	}
	if err := o.check(op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := o.toC(op)
	if err != nil {
		return nil, err
	}
	defer C.bottle_launch_options_free(c)
	w, err := watch(ctx, op, func(t *C.bottle_cancel) C.enum_bottle_status {
		return C.bottle_launch_options_set_cancel(c, t)
	})
	if err != nil {
		return nil, err
	}
	var h *C.bottle
	if err := stopped(ctx, op, C.bottle_launch(c, &h), w); err != nil {
		return nil, err
	}
	return newBottle(h), nil
}

// WithBottle launches a machine as Launch does, calls fn with its Bottle,
// and always closes it afterwards, stopping and deleting the machine: when
// fn returns, and when fn panics (the panic then goes on once the machine
// is gone). It returns fn's error joined (errors.Join) with Close's, either
// of which may be nil; a failed Launch returns its error without calling
// fn. If fn closes the Bottle itself, that Close reports the teardown and
// WithBottle's finds nothing left to do.
func WithBottle(ctx context.Context, fn func(*Bottle) error, opts ...LaunchOption) (err error) {
	b, err := Launch(ctx, opts...)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := b.Close(); closeErr != nil {
			err = errors.Join(err, closeErr)
		}
	}()
	return fn(b)
}

// Reap deletes every machine that libbottle launched and whose owning
// process is gone (exited, or from before a reboot), such as those of a
// process killed before it could close its bottles, and returns their
// names. Machines of live processes, of processes in another pid
// namespace (which cannot be looked up from here), and machines libbottle
// did not launch, are left alone. It finds smolvm as Open does. Machines
// launched WithEndpoint carry no labels and are not seen: ReapAt reaps
// those.
//
// A machine that cannot be deleted makes Reap return an ErrSmolvm error
// after trying the others; the names returned are then those deleted. A
// ctx already done returns ctx.Err() without looking; a ctx that ends
// during Reap stops smolvm and returns ctx.Err() with the names deleted so
// far. Two Reaps at once are safe.
func Reap(ctx context.Context) ([]string, error) {
	const op = "reap"
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return reap(ctx, op, func(c *C.bottle_call_options, removed *C.bottle_names) C.enum_bottle_status {
		return C.bottle_reap_with(c, removed)
	})
}
