package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Every node's data directory is an ext4 filesystem of its own: a sparse
// image in the output directory (disk-K.img), loop-mounted on data-K by the
// outer process before the clients' namespace is entered, so the inner
// process and every node (each `ip netns exec` copies the mount namespace)
// see it. The disk fault fills one of them to ENOSPC. The outer process
// unmounts on every exit; the image stays for a look at the data.

const (
	diskImageSize = 4 << 30 // sparse: only what the nodes write takes space
	fillerName    = "chaos-filler"
	// diskEnv tells the inner process whether the data directories are
	// loop-mounted ("mounted") or why not (anything else): without them the
	// disk fault would fill the host's disk, so it is off.
	diskEnv = "GREGOR_CHAOS_DISKS"
)

func diskImage(out string, id int) string { return filepath.Join(out, fmt.Sprintf("disk-%d.img", id)) }
func dataDir(out string, id int) string   { return filepath.Join(out, fmt.Sprintf("data-%d", id)) }

// setupDisks makes and mounts one image per node. On an error it undoes what
// it did; the caller then runs on plain directories without the disk fault.
func setupDisks(out string, nodes int) error {
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("no %s", tool)
		}
	}
	for id := 1; id <= nodes; id++ {
		img, dir := diskImage(out, id), dataDir(out, id)
		err := func() error {
			f, err := os.Create(img)
			if err != nil {
				return err
			}
			err = f.Truncate(diskImageSize)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := run("mkfs.ext4", "-q", "-F", img); err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return run("mount", "-o", "loop", img, dir)
		}()
		if err != nil {
			teardownDisks(out)
			return err
		}
	}
	return nil
}

// teardownDisks unmounts every filesystem whose loop device is backed by one
// of the suite's images in out (this run's, or an earlier run's that died)
// and detaches the devices; nothing else is touched. It returns what it did,
// for the log.
func teardownDisks(out string) []string {
	var done []string
	for _, img := range suiteImages(out) {
		for _, dev := range loopDevices(img) {
			for _, mp := range mountsOf(dev) {
				if err := run("umount", mp); err != nil {
					// Still busy (a process that is going away): detach it
					// now, the kernel lets go once the last user has.
					if err := run("umount", "-l", mp); err != nil {
						done = append(done, fmt.Sprintf("umount %s FAILED: %v", mp, err))
						continue
					}
				}
				done = append(done, "umount "+mp)
			}
			// A loop mount detaches its device on unmount; this is for one
			// left attached without a mount. The device may already be gone.
			if run("losetup", "-d", dev) == nil {
				done = append(done, "losetup -d "+dev)
			}
		}
	}
	return done
}

// suiteImages are the images of a run (or of an earlier one) in out.
func suiteImages(out string) []string {
	imgs, _ := filepath.Glob(filepath.Join(out, "disk-*.img"))
	return imgs
}

// loopDevices are the loop devices backed by img (losetup -j).
func loopDevices(img string) []string {
	b, err := exec.Command("losetup", "-j", img).Output()
	if err != nil {
		return nil
	}
	var devs []string
	for _, line := range strings.Split(string(b), "\n") {
		if dev, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(dev, "/dev/loop") {
			devs = append(devs, dev)
		}
	}
	return devs
}

// mountsOf lists the mount points of dev in this mount namespace, deepest
// last mounted first.
func mountsOf(dev string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(qf) >= 2 && qf[1] == dev {
			mps = append([]string{unescapeMount(pf[4])}, mps...)
		}
	}
	return mps
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fillDisk fills the filesystem holding dir with a filler file until a
// write fails with ENOSPC, and returns the filler's size. Most of the space
// is taken with fallocate (metadata only, so the image stays sparse), the
// rest by writing; it writes again after an fsync, which gives back blocks
// ext4 had reserved for delayed allocation, until a round writes nothing.
func fillDisk(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	free := int64(st.Bfree) * st.Bsize
	f, err := os.OpenFile(filepath.Join(dir, fillerName), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if pre := free - 16<<20; pre > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, pre); err != nil && !errors.Is(err, syscall.ENOSPC) {
			return 0, fmt.Errorf("fallocate: %w", err)
		}
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	limit := size + free + 64<<20 // a full disk is reached long before
	for round := 0; round < 10; round++ {
		wrote := false
		for _, chunk := range []int{64 << 10, 4 << 10, 512} {
			for size < limit {
				n, err := f.Write(buf[:chunk])
				size += int64(n)
				wrote = wrote || n > 0
				if errors.Is(err, syscall.ENOSPC) {
					break
				}
				if err != nil {
					return size, err
				}
			}
		}
		if size >= limit {
			return size, fmt.Errorf("no ENOSPC after %d bytes: is %s its own filesystem?", size, dir)
		}
		if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
			return size, err
		}
		if !wrote && round > 0 {
			break
		}
	}
	return size, nil
}

// diskFree is the free space of dir's filesystem, for the fault's line.
func diskFree(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return -1
	}
	return int64(st.Bfree) * st.Bsize
}

// readyz answers the node's /readyz body ("" and the error when it does
// not answer).
func (n *node) readyz() (string, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://%s/readyz", net.JoinHostPort(nodeIP(n.id), strconv.Itoa(httpPort))))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.TrimSpace(string(b)), err
}

// leadershipLimit bounds how long after its disk filled a broker whose log
// directory went offline may still lead a partition: a fenced broker leads
// nothing. It is fenced at once when it reaches the active controller, or
// when its session expires (broker.session.timeout.ms, 3 s in the suite)
// after a controller failover when it was the controller itself.
const leadershipLimit = 15 * time.Second

// disk fills one node's filesystem (a random node, or the leader of a
// random partition) for 3-10 s while the workloads run. Gregor takes a log
// directory whose writes fail offline and fences the broker; its Raft store
// is on the same disk and may halt the process. While the disk is full the
// nemesis watches, by the other nodes' metadata, for the node to lead no
// partition of logTopic; if it still leads one at the end of the window,
// the disk stays full until it does, up to leadershipLimit. The heal
// removes the filler, then restarts the node if it exited or its log
// directory went offline (as Kafka, it needs a restart to bring a failed
// directory back).
func (nm *nemesis) disk(ctx context.Context, f *fault) error {
	id := nm.pick(nm.ids())
	why := "random"
	if nm.rng.IntN(2) == 0 {
		p := int32(nm.rng.IntN(logPartitions))
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		l, err := nm.c.leaderOf(cctx, nm.adm, logTopic, p)
		if err != nil {
			return err
		}
		id, why = l, fmt.Sprintf("leader of %s[%d]", logTopic, p)
	}
	n := nm.c.node(id)
	d := nm.between(3*time.Second, 10*time.Second)
	f.kind = "disk"
	filled := time.Now()
	size, err := fillDisk(n.dir)
	if err != nil {
		// Part of the disk may have filled: the node may be down or
		// offline all the same.
		os.Remove(filepath.Join(n.dir, fillerName))
		if _, _, rerr := nm.reviveAfterDisk(f, n); rerr != nil {
			err = fmt.Errorf("%w; %w", err, rerr)
		}
		return fmt.Errorf("fill node %d's disk: %w", id, err)
	}
	moved := time.Duration(-1) // when the node was seen leading nothing
	var led []int              // what it led when last seen leading
	var regained []int         // what it led again after leading nothing
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		l, ok := nm.c.ledBy(lctx, nm.kcl, id)
		cancel()
		if ok && len(l) == 0 && moved < 0 {
			moved = time.Since(filled)
		}
		if ok && len(l) > 0 {
			if moved >= 0 && regained == nil {
				regained = l
			}
			led = l
		}
		if el := time.Since(filled); el >= d && (moved >= 0 || el >= leadershipLimit) {
			d = el
			break
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	f.heal = nm.r.now()
	if err := os.Remove(filepath.Join(n.dir, fillerName)); err != nil {
		return fmt.Errorf("remove node %d's filler: %w", id, err)
	}
	state, failed, err := nm.reviveAfterDisk(f, n)
	if err != nil {
		return err
	}
	lead := fmt.Sprintf("led no partition of %s %.1fs after the disk filled", logTopic, moved.Seconds())
	switch {
	case moved < 0:
		lead = fmt.Sprintf("STILL LED %s%v %.0fs after the disk filled", logTopic, led, d.Seconds())
		if failed {
			nm.violations = append(nm.violations, fmt.Sprintf("fault %d: node %d, whose disk was full and which %s, still led %s%v %.0fs after the disk filled",
				f.n, id, strings.TrimSuffix(state, "; restarted"), logTopic, led, d.Seconds()))
		}
	case regained != nil:
		lead = fmt.Sprintf("led nothing %.1fs after the disk filled, then LED %s%v AGAIN", moved.Seconds(), logTopic, regained)
		if failed {
			nm.violations = append(nm.violations, fmt.Sprintf("fault %d: node %d, whose disk was full and which %s, led %s%v again while its disk was full",
				f.n, id, strings.TrimSuffix(state, "; restarted"), logTopic, regained))
		}
	case len(led) > 0:
		lead = fmt.Sprintf("led %s%v until %.1fs after the disk filled", logTopic, led, moved.Seconds())
	}
	f.desc = fmt.Sprintf("disk of node %d (%s) full for %.1fs (a %d MiB filler), %s; %s",
		id, why, d.Seconds(), size>>20, lead, state)
	return nil
}

// reviveAfterDisk restarts a node whose disk was full if its process
// exited or its log directory went offline, and says which (failed false:
// neither).
func (nm *nemesis) reviveAfterDisk(f *fault, n *node) (state string, failed bool, err error) {
	switch body, rerr := n.readyz(); {
	case !n.running():
		return "the process exited; restarted", true, nm.restart(n)
	case rerr == nil && strings.Contains(body, "log directory is offline"):
		if err := n.terminate(20 * time.Second); err != nil {
			nm.violations = append(nm.violations, fmt.Sprintf("fault %d: %v", f.n, err))
		}
		return "its log directory went offline; restarted", true, nm.restart(n)
	}
	return "no failed write seen: not restarted", false, nil
}

// ledBy lists the partitions of logTopic that node id leads by the metadata
// of the first other node that answers (ok false if none does). Asking the
// node itself would show what it believes, not what the controller decided.
func (c *cluster) ledBy(ctx context.Context, cl *kgo.Client, id int) (led []int, ok bool) {
	for _, other := range c.nodes {
		if other.id == id || !other.running() {
			continue
		}
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(logTopic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl.Broker(other.id))
		if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
			continue
		}
		for _, p := range resp.Topics[0].Partitions {
			if int(p.Leader) == id {
				led = append(led, int(p.Partition))
			}
		}
		slices.Sort(led)
		return led, true
	}
	return nil, false
}
