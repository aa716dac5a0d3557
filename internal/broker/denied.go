package broker

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// deniedResponse answers req with code for everything it names, as Kafka's
// AbstractRequest.getErrorResponse: the response mirrors the request's
// arrays (topics, their partitions, groups, resources, ...), copies the
// fields that name each element (a topic's name and id, a partition's
// index, a group's id), and every error code in it, top level included, is
// code. An array of names (DescribeGroups' groups, DeleteTopics' topic
// names) becomes the response's array of elements named so.
//
// A topic's refusal (TOPIC_AUTHORIZATION_FAILED) is set only on what names
// a topic or a partition, never on the top level or a group, as Kafka sets
// it: a Java consumer drops a fetch response with a top-level error
// without telling the application why.
//
// It is built by reflection over kmsg's generated types, so that one
// function answers every API (TestDeniedResponseCoversEveryAPI checks each
// one the broker serves).
func deniedResponse(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	fill(reflect.ValueOf(resp).Elem(), reflect.ValueOf(req).Elem(), code)
	if code == codeTopic {
		clearUnnamed(reflect.ValueOf(resp).Elem())
	}
	if r, ok := req.(*kmsg.AlterUserSCRAMCredentialsRequest); ok {
		// One result per user, of its deletions and upsertions alike.
		out := resp.(*kmsg.AlterUserSCRAMCredentialsResponse)
		seen := map[string]bool{}
		add := func(user string) {
			if !seen[user] {
				seen[user] = true
				rr := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
				rr.User, rr.ErrorCode = user, code
				out.Results = append(out.Results, rr)
			}
		}
		for _, d := range r.Deletions {
			add(d.Name)
		}
		for _, u := range r.Upsertions {
			add(u.Name)
		}
	}
	return resp
}

// namingFields are the fields copied from a request element to its
// response element.
var namingFields = map[string]bool{
	"Topic": true, "TopicID": true, "Partition": true, "Group": true, "Name": true,
	"ResourceType": true, "ResourceName": true, "TransactionalID": true, "Key": true,
	"User": true, "Mechanism": true,
}

func fill(dst, src reflect.Value, code int16) {
	t := dst.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		d := dst.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Name == "ErrorCode" && d.Kind() == reflect.Int16 {
			d.SetInt(int64(code))
			continue
		}
		if f.Name == "HighWatermark" && d.Kind() == reflect.Int64 {
			d.SetInt(-1) // Kafka's INVALID_HIGH_WATERMARK in a failed partition
			continue
		}
		s := src.FieldByName(f.Name)
		if !s.IsValid() || (s.Kind() == reflect.Slice && s.Len() == 0) {
			if r := renamed(src, f.Name); r.IsValid() {
				s = r
			}
		}
		if !s.IsValid() {
			continue
		}
		switch {
		case f.Name == "Configs":
			// A created topic's configs (CreateTopics v5+) are not a
			// mirror of the request's: a refused topic has none.
		case d.Kind() == reflect.Slice && s.Kind() == reflect.Slice && d.Type().Elem().Kind() == reflect.Struct:
			n := s.Len()
			out := reflect.MakeSlice(d.Type(), n, n)
			for j := range n {
				e := out.Index(j)
				setDefaults(e)
				if se := s.Index(j); se.Kind() == reflect.Struct {
					fill(e, se, code)
				} else {
					nameElement(e, se, code)
				}
			}
			d.Set(reflect.AppendSlice(d, out))
		case namingFields[f.Name] && s.Type() == d.Type():
			d.Set(s)
		case namingFields[f.Name] && s.Kind() == reflect.Ptr && s.Type().Elem() == d.Type() && !s.IsNil():
			d.Set(s.Elem())
		case namingFields[f.Name] && d.Kind() == reflect.Ptr && d.Type().Elem() == s.Type():
			p := reflect.New(s.Type())
			p.Elem().Set(s)
			d.Set(p)
		}
	}
}

// clearUnnamed zeroes the error codes of the structs of v that name no
// topic, partition or configured resource (the top level, groups).
func clearUnnamed(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		named := false
		for _, n := range []string{"Topic", "Partition", "ResourceName", "Name"} {
			if v.FieldByName(n).IsValid() {
				named = true
			}
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			switch {
			case f.Name == "ErrorCode" && !named:
				v.Field(i).SetInt(0)
			case f.IsExported():
				clearUnnamed(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			for i := range v.Len() {
				clearUnnamed(v.Index(i))
			}
		}
	}
}

// renamed finds the request field a response field mirrors under another
// name: DeleteTopics v0-5 names topics in TopicNames, DescribeUserScram
// and Alter name users in Users, Deletions and Upsertions.
func renamed(src reflect.Value, name string) reflect.Value {
	switch name {
	case "User":
		return src.FieldByName("Name")
	case "Topics":
		return src.FieldByName("TopicNames")
	case "Results":
		for _, n := range []string{"Users", "Creations", "Filters", "Resources"} {
			if v := src.FieldByName(n); v.IsValid() {
				return v
			}
		}
	case "Coordinators":
		return src.FieldByName("CoordinatorKeys")
	case "TransactionStates":
		return src.FieldByName("TransactionalIDs")
	case "FilterResults":
		return src.FieldByName("Filters")
	}
	return reflect.Value{}
}

// nameElement fills a response element mirroring a request's name (a
// string) or a request element of another shape: its first naming field
// that is a string is the name.
func nameElement(e, name reflect.Value, code int16) {
	fill(e, reflect.ValueOf(struct{}{}), code)
	if name.Kind() != reflect.String {
		return
	}
	for i := range e.NumField() {
		if !namingFields[e.Type().Field(i).Name] {
			continue
		}
		switch f := e.Field(i); {
		case f.Kind() == reflect.String:
			f.SetString(name.String())
			return
		case f.Kind() == reflect.Ptr && f.Type().Elem().Kind() == reflect.String:
			s := name.String()
			f.Set(reflect.ValueOf(&s))
			return
		}
	}
}

// setDefaults applies kmsg's defaults to a new element (-1 high
// watermarks, offsets and node ids), as its New function would.
func setDefaults(e reflect.Value) {
	if d, ok := e.Addr().Interface().(interface{ Default() }); ok {
		d.Default()
	}
}
