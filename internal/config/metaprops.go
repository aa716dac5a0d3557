package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gregor-dev/gregor/internal/vfs"
)

// MetaPropertiesFile is the name of the storage identity file in a data
// directory, as Kafka's `kafka-storage format` writes it.
const MetaPropertiesFile = "meta.properties"

// ErrStorageIdentity is wrapped by errors about a data directory that does
// not belong to this node or cluster, or whose meta.properties is unusable.
var ErrStorageIdentity = errors.New("config: storage identity")

// maxMetaPropertiesBytes bounds what ReadMetaProperties reads: the file holds
// four short lines, so anything larger is not a meta.properties.
const maxMetaPropertiesBytes = 64 << 10

// MetaProperties is the storage identity of a data directory (Kafka's
// meta.properties, version 1): which cluster and node the data belongs to,
// and the directory's own id (KIP-858).
type MetaProperties struct {
	ClusterID   string
	NodeID      int32
	DirectoryID string
}

// ReadMetaProperties reads dir's meta.properties. A missing file returns an
// error wrapping os.ErrNotExist; a file that is not version=1 with a
// cluster.id and a node.id wraps ErrStorageIdentity.
func ReadMetaProperties(dir string) (MetaProperties, error) {
	return ReadMetaPropertiesFS(vfs.Default, dir)
}

// ReadMetaPropertiesFS is ReadMetaProperties on fs.
func ReadMetaPropertiesFS(fs vfs.FS, dir string) (MetaProperties, error) {
	path := filepath.Join(dir, MetaPropertiesFile)
	f, err := fs.Open(path)
	if err != nil {
		return MetaProperties{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	props, err := LoadProperties(io.LimitReader(f, maxMetaPropertiesBytes))
	if err != nil {
		return MetaProperties{}, fmt.Errorf("%w: %s: %w", ErrStorageIdentity, path, err)
	}
	if v := props["version"]; v != "1" {
		return MetaProperties{}, fmt.Errorf("%w: %s: version %q, want 1", ErrStorageIdentity, path, v)
	}
	m := MetaProperties{ClusterID: props["cluster.id"], DirectoryID: props["directory.id"]}
	if m.ClusterID == "" {
		return MetaProperties{}, fmt.Errorf("%w: %s has no cluster.id", ErrStorageIdentity, path)
	}
	id, err := strconv.ParseInt(props["node.id"], 10, 32)
	if err != nil || id < 0 {
		return MetaProperties{}, fmt.Errorf("%w: %s: bad node.id %q", ErrStorageIdentity, path, props["node.id"])
	}
	m.NodeID = int32(id)
	return m, nil
}

// WriteMetaProperties writes m as dir's meta.properties in Kafka's format,
// atomically: a temporary file is fsynced, renamed over the old one and the
// directory fsynced, so a crash leaves either the old file or the new one.
func WriteMetaProperties(dir string, m MetaProperties) error {
	return WriteMetaPropertiesFS(vfs.Default, dir, m)
}

// WriteMetaPropertiesFS is WriteMetaProperties on fs.
func WriteMetaPropertiesFS(fs vfs.FS, dir string, m MetaProperties) error {
	var b strings.Builder
	b.WriteString("#\n#" + time.Now().UTC().Format("Mon Jan 02 15:04:05 MST 2006") + "\n")
	fmt.Fprintf(&b, "cluster.id=%s\ndirectory.id=%s\nnode.id=%d\nversion=1\n", m.ClusterID, m.DirectoryID, m.NodeID)
	path := filepath.Join(dir, MetaPropertiesFile)
	tmp := path + ".tmp"
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	_, err = f.Write([]byte(b.String()))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err != nil {
		_ = fs.Remove(tmp)
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("config: sync %s: %w", dir, err)
	}
	return nil
}

// NewDirectoryID returns a random directory id in the form of Kafka's Uuid
// (22 characters of unpadded base64url).
func NewDirectoryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// CheckMetaProperties checks that a data directory formatted as m may be used
// by node nodeID of cluster clusterID (clusterID empty: not known yet).
func CheckMetaProperties(m MetaProperties, dir string, nodeID int32, clusterID string) error {
	if m.NodeID != nodeID {
		return fmt.Errorf("%w: data directory %s belongs to node %d (its %s), not to node %d: give this node its own directory or --node-id %d",
			ErrStorageIdentity, dir, m.NodeID, MetaPropertiesFile, nodeID, m.NodeID)
	}
	if clusterID != "" && m.ClusterID != clusterID {
		return fmt.Errorf("%w: data directory %s belongs to cluster %s (its %s), but the metadata quorum is cluster %s: this node's data is another cluster's",
			ErrStorageIdentity, dir, m.ClusterID, MetaPropertiesFile, clusterID)
	}
	return nil
}
