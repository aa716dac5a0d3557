// Command fsyncprobe measures what a disk allows an acks=all broker, with no
// broker in the way: FILES files, each appended SIZE bytes every EVERY and
// fdatasynced after each append, from one goroutine per file, as a broker's
// partitions are. It prints the distribution of write+fdatasync times.
//
//	go run ./fsyncprobe -dir /var/lib/gregor/probe -files 24 -size 16384 -every 1400us
//
// -mode grow appends to a growing file, as segments are written (every
// fdatasync then also commits the file's new size and blocks to the
// filesystem journal); -mode overwrite first writes and syncs zeros over
// the whole span and then overwrites them, so an fdatasync flushes data
// only. docs/performance.md quotes its figures. The directory is created
// and removed.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", "", "directory on the disk to measure (created and removed; required)")
	files := flag.Int("files", 24, "files written side by side (partitions)")
	size := flag.Int("size", 16384, "bytes per append")
	every := flag.Duration("every", 2*time.Millisecond, "interval between appends to one file")
	dur := flag.Duration("dur", 10*time.Second, "how long to measure")
	mode := flag.String("mode", "grow", "grow | overwrite")
	flag.Parse()
	if *dir == "" || (*mode != "grow" && *mode != "overwrite") || *files < 1 || *size < 1 || *every <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, *files, *size, *every, *dur, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "fsyncprobe:", err)
		os.Exit(1)
	}
}

func run(dir string, files, size int, every, dur time.Duration, mode string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Enough span per file for the whole run at the asked rate.
	span := (int64(dur/every) + 1) * int64(size)
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte('A' + i%26)
	}
	var fs []*os.File
	defer func() {
		for _, f := range fs {
			f.Close()
		}
	}()
	for i := range files {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%04d.log", i)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		fs = append(fs, f)
		if mode == "overwrite" {
			if err := zeroFill(f, span); err != nil {
				return err
			}
		}
	}
	if mode == "overwrite" {
		syscall.Sync() // nothing of the fill left to write back during the run
		time.Sleep(2 * time.Second)
	}
	var (
		mu      sync.Mutex
		lat     []time.Duration
		missed  int
		wg      sync.WaitGroup
		firstEr error
	)
	start := time.Now()
	for _, f := range fs {
		wg.Go(func() {
			var mine []time.Duration
			var off int64
			next := start
			for time.Since(start) < dur {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				t0 := time.Now()
				if _, err := f.WriteAt(buf, off); err != nil {
					mu.Lock()
					firstEr = err
					mu.Unlock()
					return
				}
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					mu.Lock()
					firstEr = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
				off += int64(size)
				next = next.Add(every)
				if behind := time.Since(next); behind > every {
					// A slow sync: skip the appends it made late
					// rather than burst to catch up.
					skip := int64(behind / every)
					next = next.Add(time.Duration(skip) * every)
					mu.Lock()
					missed += int(skip)
					mu.Unlock()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	if len(lat) == 0 {
		return fmt.Errorf("no append finished")
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)].Round(time.Microsecond) }
	mb := float64(len(lat)) * float64(size) / dur.Seconds() / 1e6
	fmt.Printf("mode %s: %d files, %d B every %v: %d appends (%.0f MB/s, %d skipped late), write+fdatasync p50 %v p90 %v p99 %v p99.9 %v max %v\n",
		mode, files, size, every, len(lat), mb, missed, q(0.5), q(0.9), q(0.99), q(0.999), lat[len(lat)-1].Round(time.Microsecond))
	return nil
}

// zeroFill writes and syncs zeros over [0, span) of f.
func zeroFill(f *os.File, span int64) error {
	z := make([]byte, 1<<20)
	for off := int64(0); off < span; off += int64(len(z)) {
		if _, err := f.WriteAt(z[:min(int64(len(z)), span-off)], off); err != nil {
			return err
		}
	}
	return syscall.Fdatasync(int(f.Fd()))
}
