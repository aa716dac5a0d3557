package broker

import (
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// populate gives every slice of v one element, recursively, and every
// string a name, so that a request names something at each level.
func populate(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				populate(v.Field(i), depth)
			}
		}
	case reflect.Slice:
		if depth > 4 || v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		e := reflect.New(v.Type().Elem()).Elem()
		populate(e, depth+1)
		v.Set(reflect.Append(v, e))
	case reflect.String:
		v.SetString("x")
	case reflect.Ptr:
		if v.Type().Elem().Kind() == reflect.String {
			s := "x"
			v.Set(reflect.ValueOf(&s))
		}
	}
}

// collectCodes collects every ErrorCode of a response.
func collectCodes(v reflect.Value, out *[]int16) {
	switch v.Kind() {
	case reflect.Ptr:
		if !v.IsNil() {
			collectCodes(v.Elem(), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
				*out = append(*out, int16(v.Field(i).Int()))
			} else if f.IsExported() {
				collectCodes(v.Field(i), out)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			collectCodes(v.Index(i), out)
		}
	}
}

// topicAPIs are the APIs a topic's refusal can answer: the code goes on
// their topics or partitions, never on the top level.
var topicAPIs = map[int16]bool{0: true, 1: true, 2: true, 8: true, 9: true, 19: true, 20: true, 21: true, 23: true,
	24: true, 28: true, 32: true, 33: true, 37: true, 44: true, 47: true, 61: true}

// TestDeniedResponseCoversEveryAPI: for every API the broker serves, at its
// highest version, a request naming one thing at every level is answered
// with a response that carries the code (a topic's on what names a topic
// or partition, the cluster's elsewhere too), and encodes and decodes.
func TestDeniedResponseCoversEveryAPI(t *testing.T) {
	for key, a := range apis {
		code := codeCluster
		if topicAPIs[key] {
			code = codeTopic
		}
		req := kmsg.RequestForKey(key)
		req.SetVersion(a.max)
		populate(reflect.ValueOf(req).Elem(), 0)
		resp := deniedResponse(req, code)
		var codes []int16
		collectCodes(reflect.ValueOf(resp), &codes)
		found := false
		for _, c := range codes {
			if c == code {
				found = true
			} else if c != 0 {
				t.Errorf("%s: error code %d", kmsg.NameForKey(key), c)
			}
		}
		if !found {
			t.Errorf("%s v%d: no error code in %+v", kmsg.NameForKey(key), a.max, resp)
			continue
		}
		back := req.ResponseKind()
		back.SetVersion(a.max)
		if err := back.ReadFrom(resp.AppendTo(nil)); err != nil {
			t.Errorf("%s: the response does not decode: %v", kmsg.NameForKey(key), err)
		}
	}
}

// TestDeniedResponseNamesWhatWasAsked: the response names each element as
// the request did, so that clients match the errors to what they sent.
func TestDeniedResponseNamesWhatWasAsked(t *testing.T) {
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(9)
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "orders"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = 7
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	pr := deniedResponse(produce, 29).(*kmsg.ProduceResponse)
	if len(pr.Topics) != 1 || pr.Topics[0].Topic != "orders" || pr.Topics[0].Partitions[0].Partition != 7 || pr.Topics[0].Partitions[0].ErrorCode != 29 {
		t.Fatalf("produce: %+v", pr)
	}
	groups := kmsg.NewPtrDescribeGroupsRequest()
	groups.Groups = []string{"g1", "g2"}
	gr := deniedResponse(groups, 30).(*kmsg.DescribeGroupsResponse)
	if len(gr.Groups) != 2 || gr.Groups[1].Group != "g2" || gr.Groups[1].ErrorCode != 30 {
		t.Fatalf("describe groups: %+v", gr)
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.SetVersion(3)
	del.TopicNames = []string{"a"}
	dr := deniedResponse(del, 29).(*kmsg.DeleteTopicsResponse)
	if len(dr.Topics) != 1 || dr.Topics[0].Topic == nil || *dr.Topics[0].Topic != "a" {
		t.Fatalf("delete topics: %+v", dr)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(12)
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "t"
	ft.Partitions = append(ft.Partitions, kmsg.NewFetchRequestTopicPartition())
	fetch.Topics = append(fetch.Topics, ft)
	fr := deniedResponse(fetch, 29).(*kmsg.FetchResponse)
	if fr.ErrorCode != 0 || fr.Topics[0].Partitions[0].ErrorCode != 29 || fr.Topics[0].Partitions[0].HighWatermark != -1 || fr.Topics[0].Topic != "t" {
		t.Fatalf("fetch: %+v", fr.Topics)
	}
}
