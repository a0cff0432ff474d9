package ringbuf_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/warpmesh/warpmesh/ringbuf"
)

// A worker goroutine hands values to a consumer that drains whatever is
// ready in one batch and sleeps (parks) only when there is nothing to do.
func ExampleNewSPSC() {
	r, err := ringbuf.NewSPSC[int](8)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	go func() {
		for i := 1; i <= 5; i++ {
			if err := r.Push(ctx, i); err != nil {
				return
			}
		}
		r.Close()
	}()
	sum := 0
	batch := make([]int, 8)
	for r.Wait(ctx) == nil {
		for _, v := range batch[:r.PopBatch(batch)] {
			sum += v
		}
	}
	fmt.Println("sum:", sum)
	// Output: sum: 15
}

// Many goroutines publish into one MPSC ring; one loop drains it. After
// Close, Wait reports ErrClosed, which is also a net.ErrClosed.
func ExampleNewMPSC() {
	r, err := ringbuf.NewMPSC[uint64](1024)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 100 {
				_ = r.Push(ctx, uint64(p*100+i))
			}
		})
	}
	go func() { wg.Wait(); r.Close() }()

	n := 0
	batch := make([]uint64, 64)
	var err2 error
	for {
		if err2 = r.Wait(ctx); err2 != nil {
			break
		}
		n += r.PopBatch(batch)
	}
	fmt.Println("received:", n, "closed:", errors.Is(err2, net.ErrClosed))
	// Output: received: 400 closed: true
}

// Records carries variable-length keys without allocating per key. Read hands
// out views into the ring that are valid only during the callback.
func ExampleNewRecords() {
	r, err := ringbuf.NewRecords(16 << 10)
	if err != nil {
		panic(err)
	}
	const kindInvalidate = 1
	for _, key := range []string{"user:1", "user:2", "order:77"} {
		if err := r.TryWrite(kindInvalidate, []byte(key)); err != nil {
			panic(err)
		}
	}
	r.Read(16, func(kind uint8, rec []byte) {
		fmt.Printf("kind %d key %s\n", kind, rec)
	})
	fmt.Println(r.TryWrite(kindInvalidate, make([]byte, r.MaxPayload()+1)))
	// Output:
	// kind 1 key user:1
	// kind 1 key user:2
	// kind 1 key order:77
	// ringbuf: record too large
}

// Constructors refuse a capacity that is not a power of two.
func ExampleNewMPSC_badCapacity() {
	_, err := ringbuf.NewMPSC[int](1000)
	fmt.Println(err)
	fmt.Println(errors.Is(err, ringbuf.ErrCapacity))
	// Output:
	// ringbuf: NewMPSC capacity 1000 must be a power of two >= 2: ringbuf: invalid capacity
	// true
}
