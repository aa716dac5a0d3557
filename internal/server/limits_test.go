package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// populate fills every field of v (a kmsg request struct) with a non-zero
// value and every slice with two elements, so that every field present at
// the version is encoded, tagged fields included.
func populate(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[kmsg.Tags]() {
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Name == "Version" {
				continue
			}
			populate(v.Field(i), depth+1)
		}
	case reflect.Pointer:
		if depth > 12 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		populate(v.Elem(), depth+1)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{1, 2, 3})
			return
		}
		if depth > 12 {
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			populate(v.Index(i), depth+1)
		}
	case reflect.Array:
		for i := range v.Len() {
			populate(v.Index(i), depth+1)
		}
	case reflect.String:
		v.SetString("ab")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float64:
		v.SetFloat(1.5)
	}
}

// walkStrict walks body with the layout of key and requires it to be
// consumed exactly.
func walkStrict(key, version int16, body []byte) error {
	l := requestLayouts[key]
	if l == nil {
		return errors.New("no layout")
	}
	w := walker{b: body, version: version, flexible: l.flexibleFrom >= 0 && version >= l.flexibleFrom}
	if err := w.structFields(l.fields); err != nil {
		return err
	}
	if len(w.b) != 0 {
		return errors.New("bytes left over")
	}
	return nil
}

// TestRequestLayoutsMatchKmsg checks the generated layouts against kmsg's
// encoder: every request at every version kmsg knows, with every field and
// two elements in every array, is walked exactly to its end. A layout that
// misplaced a field would misread a length and end early or late.
func TestRequestLayoutsMatchKmsg(t *testing.T) {
	n := 0
	for key := range int16(200) {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		l := requestLayouts[key]
		if l == nil {
			t.Errorf("key %d (%T): no layout", key, req)
			continue
		}
		if l.maxVersion < req.MaxVersion() {
			t.Errorf("key %d: layout up to v%d, kmsg up to v%d", key, l.maxVersion, req.MaxVersion())
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			r := kmsg.RequestForKey(key)
			populate(reflect.ValueOf(r).Elem(), 0)
			r.SetVersion(v)
			b := r.AppendTo(nil)
			if err := walkStrict(key, v, b); err != nil {
				t.Errorf("key %d (%T) v%d, %d bytes: %v", key, r, v, len(b), err)
			}
			// Every truncation ends early without a panic.
			for cut := range len(b) {
				if walkStrict(key, v, b[:cut]) == nil && cut < len(b) {
					// A shorter prefix can be complete only if the
					// tail is optional, which no request has.
					t.Errorf("key %d v%d: %d-byte prefix of %d walked as complete", key, v, cut, len(b))
					break
				}
			}
			n++
		}
	}
	if n < 300 {
		t.Fatalf("checked %d request versions, want every version of every key", n)
	}
	t.Logf("checked %d request versions", n)
}

// limitFrame returns a request frame body (no size prefix) for key/version
// with the given header tag section and body.
func limitFrame(key, version int16, headerTags, b []byte) []byte {
	out := binary.BigEndian.AppendUint16(nil, uint16(key))
	out = binary.BigEndian.AppendUint16(out, uint16(version))
	out = binary.BigEndian.AppendUint32(out, 7)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = append(out, 'c')
	out = append(out, headerTags...)
	return append(out, b...)
}

// tagSection is a tag section of n unknown, empty fields (tags 100...).
func tagSection(n int) []byte {
	b := binary.AppendUvarint(nil, uint64(n))
	for i := range n {
		b = binary.AppendUvarint(b, uint64(100+i))
		b = append(b, 0)
	}
	return b
}

func TestParseRequestDecoderLimits(t *testing.T) {
	// Metadata v1: topics is an int32-counted array of int16 strings, two
	// bytes per empty name.
	metadataV1 := func(n int) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(n))
		return append(b, make([]byte, 2*n)...)
	}
	// ListGroups v4 (flexible): states filter, a compact array of compact
	// strings, one byte per empty string, then the body's tag section.
	listGroupsV4 := func(n int) []byte {
		b := binary.AppendUvarint(nil, uint64(n+1))
		b = append(b, bytes.Repeat([]byte{1}, n)...)
		return append(b, 0)
	}
	// Metadata v12: one topic (zero uuid, null name) with the given tags,
	// flags, then the body's tag section.
	metadataV12 := func(topicTags, bodyTags []byte) []byte {
		b := append([]byte{2}, make([]byte, 17)...)
		b = append(b, topicTags...)
		b = append(b, 1, 0)
		return append(b, bodyTags...)
	}
	// Metadata v12: one topic whose name is n bytes.
	compactName := func(n int) []byte {
		b := append([]byte{2}, make([]byte, 16)...)
		b = binary.AppendUvarint(b, uint64(n+1))
		b = append(b, bytes.Repeat([]byte{'t'}, n)...)
		return append(b, 0, 1, 0, 0)
	}
	empty := []byte{0}
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"array of 1000000 accepted", limitFrame(3, 1, nil, metadataV1(maxArrayLen)), nil},
		{"array of 1000001 refused", limitFrame(3, 1, nil, metadataV1(maxArrayLen+1)), errArrayTooLong},
		{"compact array of 1000000 accepted", limitFrame(16, 4, empty, listGroupsV4(maxArrayLen)), nil},
		{"compact array of 1000001 refused", limitFrame(16, 4, empty, listGroupsV4(maxArrayLen+1)), errArrayTooLong},
		{"header tags 10000 accepted", limitFrame(3, 12, tagSection(maxTaggedFields), metadataV12(empty, empty)), nil},
		{"header tags 10001 refused", limitFrame(3, 12, tagSection(maxTaggedFields+1), metadataV12(empty, empty)), errTooManyTaggedFields},
		{"body tags 10000 accepted", limitFrame(3, 12, empty, metadataV12(empty, tagSection(maxTaggedFields))), nil},
		{"body tags 10001 refused", limitFrame(3, 12, empty, metadataV12(empty, tagSection(maxTaggedFields+1))), errTooManyTaggedFields},
		{"array element tags 10000 accepted", limitFrame(3, 12, empty, metadataV12(tagSection(maxTaggedFields), empty)), nil},
		{"compact string of 32767 bytes accepted", limitFrame(3, 12, empty, compactName(maxStringLen)), nil},
		{"compact string of 32768 bytes refused", limitFrame(3, 12, empty, compactName(maxStringLen+1)), errStringTooLong},
		{"array element tags 10001 refused", limitFrame(3, 12, empty, metadataV12(tagSection(maxTaggedFields+1), empty)), errTooManyTaggedFields},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseRequest(tc.in, kmsgMaxVersion)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if req.Body == nil {
					t.Fatal("no body")
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("parse: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestParseRequestLimitRefusedBeforeAllocation: a refused array costs the
// walk, not kmsg's slice of a million elements.
func TestParseRequestLimitRefusedBeforeAllocation(t *testing.T) {
	b := binary.BigEndian.AppendUint32(nil, maxArrayLen+1)
	b = append(b, make([]byte, 2*(maxArrayLen+1))...)
	in := limitFrame(3, 1, nil, b)
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := parseRequest(in, kmsgMaxVersion); !errors.Is(err, errArrayTooLong) {
			t.Fatalf("parse: %v", err)
		}
	})
	if allocs > 20 {
		t.Fatalf("%v allocations to refuse the array, want a handful", allocs)
	}
}

// FuzzRequestBodyWalk compares the limit walk with kmsg: the walk must never
// refuse a body that kmsg decodes, except for breaking one of the limits,
// and must never panic.
func FuzzRequestBodyWalk(f *testing.F) {
	for key := range int16(100) {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		for _, v := range []int16{0, req.MaxVersion()} {
			r := kmsg.RequestForKey(key)
			populate(reflect.ValueOf(r).Elem(), 0)
			r.SetVersion(v)
			f.Add(uint8(key), uint8(v), r.AppendTo(nil))
		}
	}
	f.Fuzz(func(t *testing.T, key, version uint8, body []byte) {
		req := kmsg.RequestForKey(int16(key))
		if req == nil || int16(version) > req.MaxVersion() {
			return
		}
		req.SetVersion(int16(version))
		walkErr := checkBodyLimits(int16(key), int16(version), body)
		if errors.Is(walkErr, errArrayTooLong) || errors.Is(walkErr, errTooManyTaggedFields) || errors.Is(walkErr, errStringTooLong) {
			return
		}
		if kmsgErr := req.ReadFrom(body); kmsgErr == nil && walkErr != nil {
			t.Fatalf("key %d v%d: kmsg decodes the body, the walk refuses it: %v", key, version, walkErr)
		}
	})
}

// BenchmarkCheckBodyLimits measures the walk against kmsg's decode of the
// same body: a produce of 50 partitions and a fetch of 200 partitions.
func BenchmarkCheckBodyLimits(b *testing.B) {
	produce := kmsg.NewPtrProduceRequest()
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "bench"
	for i := range 50 {
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Partition, pp.Records = int32(i), make([]byte, 16<<10)
		pt.Partitions = append(pt.Partitions, pp)
	}
	produce.Topics = append(produce.Topics, pt)
	fetch := kmsg.NewPtrFetchRequest()
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "bench"
	for i := range 200 {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = int32(i)
		ft.Partitions = append(ft.Partitions, fp)
	}
	fetch.Topics = append(fetch.Topics, ft)
	for _, req := range []kmsg.Request{produce, fetch} {
		req.SetVersion(req.MaxVersion())
		body := req.AppendTo(nil)
		b.Run(fmt.Sprintf("%T/walk", req), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := checkBodyLimits(req.Key(), req.GetVersion(), body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%T/kmsg", req), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := kmsg.RequestForKey(req.Key())
				r.SetVersion(req.GetVersion())
				if err := r.ReadFrom(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
