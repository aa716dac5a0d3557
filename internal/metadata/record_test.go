package metadata

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleRecords() []Record {
	return []Record{
		RegisterBrokerRecord{NodeID: 1, Host: "localhost", Port: 9092, Rack: "rack-a", Epoch: 7, Fenced: true},
		FenceBrokerRecord{NodeID: 1, Epoch: 7},
		UnfenceBrokerRecord{NodeID: 2, Epoch: -1},
		TopicRecord{Name: "orders", ID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		PartitionRecord{TopicID: [16]byte{1}, Partition: 3, Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 4, PartitionEpoch: 5},
		PartitionRecord{TopicID: [16]byte{1}, Replicas: []int32{}, Leader: -1},
		PartitionChangeRecord{TopicID: [16]byte{1}, Partition: 1, Leader: i32p(-1), ISR: []int32{}, Replicas: nil},
		PartitionChangeRecord{TopicID: [16]byte{1}, Partition: 1, ISR: []int32{1, 2, 3}, Replicas: []int32{3, 2, 1}},
		RemoveTopicRecord{TopicID: [16]byte{9}},
		ConfigRecord{ResourceType: ResourceTopic, ResourceName: "orders", Name: "retention.ms", Value: strp("100")},
		ConfigRecord{ResourceType: ResourceBroker, Name: "x", Value: strp("")},
		ConfigRecord{ResourceType: ResourceBroker, ResourceName: "1", Name: "x"},
		ProducerIDsRecord{BrokerID: 3, NextProducerID: 1 << 40},
		ClusterRecord{ClusterID: "MkU3OEVBNTcwNTJENDM2Qg"},
		PartitionRecord{TopicID: [16]byte{1}, Replicas: []int32{1, 4, 3}, ISR: []int32{1, 3}, Leader: 1,
			AddingReplicas: []int32{4}, RemovingReplicas: []int32{3}},
		PartitionChangeRecord{TopicID: [16]byte{1}, Replicas: []int32{1, 4, 3}, AddingReplicas: []int32{4}, RemovingReplicas: []int32{3}},
		PartitionChangeRecord{TopicID: [16]byte{1}, AddingReplicas: []int32{}, RemovingReplicas: nil},
		UnregisterBrokerRecord{NodeID: 4, Epoch: 9},
		ClientQuotaRecord{Entity: QuotaEntity{User: QuotaName{Present: true, Name: "alice"}, ClientID: QuotaName{Present: true, Default: true}},
			Key: "producer_byte_rate", Value: 1048576},
		ClientQuotaRecord{Entity: QuotaEntity{IP: QuotaName{Present: true, Name: "10.0.0.1"}}, Key: "connection_creation_rate", Remove: true},
		UserScramCredentialRecord{ScramKey: ScramKey{User: "alice", Mechanism: ScramSHA512},
			ScramCredential: ScramCredential{Salt: []byte("salt"), StoredKey: []byte{1, 2}, ServerKey: []byte{3}, Iterations: 8192}},
		RemoveUserScramCredentialRecord{ScramKey: ScramKey{User: "bob", Mechanism: ScramSHA256}},
		AccessControlEntryRecord{ID: [16]byte{7}, ACL: ACL{ResourceType: 2, ResourceName: "orders", PatternType: ACLPatternPrefixed,
			Principal: "User:alice", Host: "*", Operation: 3, Permission: 3}},
		RemoveAccessControlEntryRecord{ID: [16]byte{7}},
		RegisterBrokerRecord{NodeID: 2, Host: "b2", Port: 9092, Epoch: 3, Fenced: true,
			Listeners: []Endpoint{{Name: "PLAINTEXT", Host: "b2", Port: 9092}, {Name: "SASL_PLAINTEXT", Host: "b2.example", Port: 9094}}},
	}
}

// TestRecordReassignmentVersion checks that only records carrying a
// reassignment use version 1, so logs written before it decode unchanged.
func TestRecordReassignmentVersion(t *testing.T) {
	plain := Encode(PartitionChangeRecord{TopicID: [16]byte{1}, ISR: []int32{1}})
	moving := Encode(PartitionChangeRecord{TopicID: [16]byte{1}, AddingReplicas: []int32{}})
	created := Encode(PartitionRecord{TopicID: [16]byte{1}, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, AddingReplicas: []int32{}})
	if plain[0] != 0 || moving[0] != 1 || created[0] != 0 {
		t.Fatalf("versions %d %d %d, want 0 1 0", plain[0], moving[0], created[0])
	}
	v1 := Encode(UnregisterBrokerRecord{NodeID: 1})
	v1[0] = 1
	if _, err := Decode(v1); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("version 1 of another type: %v", err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, rec := range sampleRecords() {
		t.Run(reflect.TypeOf(rec).Name(), func(t *testing.T) {
			b := Encode(rec)
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Fatalf("got %#v, want %#v", got, rec)
			}
			// Every strict prefix is rejected, never panics.
			for i := range len(b) {
				if _, err := Decode(b[:i]); err == nil {
					t.Fatalf("prefix of %d bytes decoded", i)
				}
			}
			if _, err := Decode(append(bytes.Clone(b), 0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailing byte: %v", err)
			}
		})
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	tests := map[string]struct {
		in   []byte
		want error
	}{
		"empty":             {nil, ErrCorrupt},
		"version":           {[]byte{2, 1}, ErrUnknownVersion},
		"version 1 of type": {[]byte{1, byte(TypeFenceBroker)}, ErrUnknownVersion},
		"type":              {[]byte{0, 99}, ErrUnknownRecordType},
		"huge string":       {[]byte{0, byte(TypeCluster), 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'}, ErrCorrupt},
		"huge array":        {append(append([]byte{0, byte(TypePartition)}, make([]byte, 20)...), 0xfe, 0xff, 0xff, 0xff, 0x0f), ErrCorrupt},
		"negative array":    {append(append([]byte{0, byte(TypePartition)}, make([]byte, 20)...), 0x03), ErrCorrupt},
		"bad bool":          {[]byte{0, byte(TypeFenceBroker), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2}, ErrCorrupt},
		"batch count huge":  {[]byte{0xff, 0xff, 0x03}, ErrCorrupt},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var err error
			if name == "batch count huge" {
				_, err = DecodeBatch(tc.in)
			} else {
				_, err = Decode(tc.in)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRecordBatchRoundTrip(t *testing.T) {
	for name, recs := range map[string][]Record{"empty": {}, "all": sampleRecords()} {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeBatch(EncodeBatch(recs))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) || (len(recs) > 0 && !reflect.DeepEqual(got, recs)) {
				t.Fatalf("got %#v", got)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, rec := range sampleRecords() {
		f.Add(Encode(rec))
	}
	f.Add(EncodeBatch(sampleRecords()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if rec, err := Decode(b); err == nil {
			again, err := Decode(Encode(rec))
			if err != nil || !reflect.DeepEqual(again, rec) {
				t.Fatalf("re-encode of %#v: %#v, %v", rec, again, err)
			}
		}
		if recs, err := DecodeBatch(b); err == nil {
			// Applying arbitrary records must not panic.
			_, _ = (&Image{}).ApplyBatch(recs, 1)
		}
		if img, err := DecodeImage(b); err == nil {
			if _, err := DecodeImage(img.Encode()); err != nil {
				t.Fatalf("re-encoded image fails: %v", err)
			}
		}
	})
}
