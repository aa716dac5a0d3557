package replica

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// hwCheckpointFile holds every hosted partition's high watermark, in
// Kafka's format (version 0, a count, then "topic partition offset" lines),
// written whole (tmp file, fsync, rename) every few seconds and at Close.
// A replicated partition reopens with its checkpointed high watermark
// instead of its log end: records a crash left on this replica that the
// ISR had not all stored stay invisible until the followers have them too.
const hwCheckpointFile = "replication-offset-checkpoint"

// hwCheckpointInterval is replica.high.watermark.checkpoint.interval.ms.
const hwCheckpointInterval = 5 * time.Second

func (m *Manager) hwCheckpointPath() string { return filepath.Join(m.cfg.DataDir, hwCheckpointFile) }

// writeHWCheckpoint writes the high watermarks of the hosted partitions.
func (m *Manager) writeHWCheckpoint() error {
	parts := m.snapshot()
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(parts))
	for tp, p := range parts {
		fmt.Fprintf(&b, "%s %d %d\n", tp.Topic, tp.Partition, p.HighWatermark())
	}
	return writeFileAtomic(m.fs(), m.hwCheckpointPath(), b.Bytes())
}

// readHWCheckpoint reads the checkpoint; a missing or malformed file reads
// as empty (replicated partitions then start from their log start).
func (m *Manager) readHWCheckpoint() map[TopicPartition]int64 {
	out := make(map[TopicPartition]int64)
	data, err := m.fs().ReadFile(m.hwCheckpointPath())
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for i := 0; sc.Scan(); i++ {
		if i < 2 {
			continue // version, count
		}
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			m.logger.Warn("ignoring a malformed high watermark checkpoint", "line", i+1)
			return map[TopicPartition]int64{}
		}
		part, err1 := strconv.ParseInt(f[1], 10, 32)
		off, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || off < 0 {
			m.logger.Warn("ignoring a malformed high watermark checkpoint", "line", i+1)
			return map[TopicPartition]int64{}
		}
		out[TopicPartition{f[0], int32(part)}] = off
	}
	return out
}

// startFromCheckpoint sets a freshly opened replicated partition's high
// watermark from the checkpoint (capped by its log end), or to its log
// start when the checkpoint does not name it, as Kafka does.
func (p *Partition) startFromCheckpoint(hw int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ok {
		hw = p.log.LogStartOffset()
	}
	p.highWatermark.Store(max(min(hw, p.log.LogEndOffset()), p.log.LogStartOffset()))
}
