package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetaPropertiesRoundTripInKafkaFormat(t *testing.T) {
	dir := t.TempDir()
	want := MetaProperties{ClusterID: "MkU3OEVBNTcwNTJENDM2Qk", NodeID: 3, DirectoryID: NewDirectoryID()}
	if err := WriteMetaProperties(dir, want); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, MetaPropertiesFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"version=1\n", "cluster.id=MkU3OEVBNTcwNTJENDM2Qk\n", "node.id=3\n", "directory.id=" + want.DirectoryID + "\n"} {
		if !strings.Contains(string(raw), line) {
			t.Errorf("meta.properties lacks %q:\n%s", line, raw)
		}
	}
	got, err := ReadMetaProperties(dir)
	if err != nil || got != want {
		t.Fatalf("ReadMetaProperties = %+v, %v; want %+v", got, err, want)
	}
	if len(want.DirectoryID) != 22 {
		t.Errorf("directory id %q: want Kafka's 22-character Uuid form", want.DirectoryID)
	}
}

func TestMetaPropertiesRejects(t *testing.T) {
	cases := map[string]string{
		"version 0":     "version=0\ncluster.id=x\nnode.id=1\n",
		"no version":    "cluster.id=x\nnode.id=1\n",
		"no cluster id": "version=1\nnode.id=1\n",
		"bad node id":   "version=1\ncluster.id=x\nnode.id=-4\n",
		"not props":     "garbage without separator\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, MetaPropertiesFile), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadMetaProperties(dir); !errors.Is(err, ErrStorageIdentity) {
				t.Fatalf("ReadMetaProperties = %v, want ErrStorageIdentity", err)
			}
		})
	}
	if _, err := ReadMetaProperties(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want os.ErrNotExist", err)
	}
}

func TestCheckMetaProperties(t *testing.T) {
	m := MetaProperties{ClusterID: "c1", NodeID: 2}
	if err := CheckMetaProperties(m, "d", 2, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := CheckMetaProperties(m, "d", 2, ""); err != nil {
		t.Fatal(err)
	}
	if err := CheckMetaProperties(m, "d", 3, "c1"); !errors.Is(err, ErrStorageIdentity) || !strings.Contains(err.Error(), "belongs to node 2") {
		t.Fatalf("other node: %v", err)
	}
	if err := CheckMetaProperties(m, "d", 2, "c2"); !errors.Is(err, ErrStorageIdentity) || !strings.Contains(err.Error(), "belongs to cluster c1") {
		t.Fatalf("other cluster: %v", err)
	}
}

func TestNodeProcessRolesAndVoters(t *testing.T) {
	cases := []struct {
		name      string
		id        int32
		roles     string // "" = unset
		voters    string
		bootstrap string
		wantErr   string
	}{
		{name: "default combined", id: 1},
		{name: "combined explicit", id: 1, roles: "broker,controller"},
		{name: "combined reversed", id: 2, roles: "controller, broker", voters: "1@h:1,2@h:2,3@h:3"},
		{name: "broker only", id: 4, roles: "broker", voters: "1@h:1,2@h:2,3@h:3"},
		{name: "broker only, bootstrap servers", id: 4, roles: "broker", bootstrap: "h:1,h:2"},
		{name: "broker only alone", id: 4, roles: "broker", wantErr: "a broker-only node needs the controllers"},
		{name: "broker only among voters", id: 3, roles: "broker", voters: "1@h:1,2@h:2,3@h:3", wantErr: "has no controller role"},
		{name: "controller only", id: 1, roles: "controller", voters: "1@h:1,2@h:2,3@h:3"},
		{name: "controller joining", id: 5, roles: "controller", bootstrap: "h:1"},
		{name: "bad bootstrap server", id: 4, roles: "broker", bootstrap: "h", wantErr: "controller.quorum.bootstrap.servers entry"},
		{name: "unknown role", id: 1, roles: "broker,zookeeper", wantErr: `unknown role "zookeeper"`},
		{name: "not a voter", id: 4, voters: "1@h:1,2@h:2,3@h:3", wantErr: "not in controller.quorum.voters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := DefaultNode()
			n.NodeID = tc.id
			n.Voters = tc.voters
			if tc.roles != "" {
				n.Props[PropProcessRoles] = tc.roles
			}
			if tc.bootstrap != "" {
				n.Props[PropQuorumBootstrapServers] = tc.bootstrap
			}
			err := n.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
