package broker

// DescribeConfigs (key 32) v0-4, AlterConfigs (key 33) v0-2,
// IncrementalAlterConfigs (key 44) v0-1: topic (type 2), broker (type 4)
// and group (type 32, Kafka 4.0's group configs) resources.
//
// Every value is reported with its source (topic override, dynamic broker,
// dynamic cluster default, static file, built-in default), synonyms when
// asked (v1+), types and documentation (v3+). Changes are validated against
// the config tables (unknown topic configs: INVALID_CONFIG; static broker
// properties and bad broker values: INVALID_REQUEST; unknown broker names
// are kept, as Kafka keeps them) and recorded in the
// metadata log, so they survive restarts and reach every node. AlterConfigs
// replaces a resource's whole override set; IncrementalAlterConfigs sets,
// deletes, appends to or subtracts from single entries.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/config"
	"github.com/gregor-dev/gregor/internal/group"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/server"
)

const (
	resourceTopic  = kmsg.ConfigResourceType(metadata.ResourceTopic)
	resourceBroker = kmsg.ConfigResourceType(metadata.ResourceBroker)
	resourceGroup  = kmsg.ConfigResourceType(metadata.ResourceGroup)
)

const msgEmptyGroup = "Group name must not be empty"

func handleDescribeConfigs(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	img := b.image()
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var names []string
		var layers config.Layers
		clusterDefault := false
		switch r.ResourceType {
		case resourceTopic:
			t := img.Topics[r.ResourceName]
			if t == nil {
				rr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			names, layers = config.SortedNames(config.TopicDefs), b.topicLayers(img, t.Configs)
		case resourceBroker:
			if code, msg := b.checkBrokerResource(r.ResourceName, false); code != 0 {
				rr.ErrorCode, rr.ErrorMessage = code, &msg
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			layers = b.brokerLayers(img)
			if r.ResourceName == "" {
				// The cluster default lists only what is set on it, as
				// Kafka's does.
				clusterDefault = true
				layers.DynamicBroker = nil
				names = slices.Sorted(maps.Keys(layers.DynamicDefault))
				break
			}
			// Every property, and any unknown name set at runtime: Kafka
			// stores those too and lists them.
			names = config.SortedNames(config.BrokerDefs)
			var unknown []string
			for _, m := range []map[string]string{layers.DynamicBroker, layers.DynamicDefault} {
				for n := range m {
					if _, ok := config.BrokerDefs[n]; !ok && !slices.Contains(unknown, n) {
						unknown = append(unknown, n)
					}
				}
			}
			slices.Sort(unknown)
			names = append(names, unknown...)
		case resourceGroup:
			// Any group, known to a coordinator or not, as Kafka.
			if r.ResourceName == "" {
				rr.ErrorCode, rr.ErrorMessage = kerr.InvalidRequest.Code, strPtr(msgEmptyGroup)
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			for _, name := range config.SortedNames(config.GroupDefs) {
				if r.ConfigNames == nil || slices.Contains(r.ConfigNames, name) {
					rr.Configs = append(rr.Configs, b.describeGroupConfig(req, img, r.ResourceName, name))
				}
			}
			resp.Resources = append(resp.Resources, rr)
			continue
		default:
			rr.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("resource type %d is not supported", r.ResourceType)
			rr.ErrorMessage = &msg
			resp.Resources = append(resp.Resources, rr)
			continue
		}
		for _, name := range names {
			if r.ConfigNames != nil && !slices.Contains(r.ConfigNames, name) {
				continue
			}
			rr.Configs = append(rr.Configs, describeConfig(req, name, r.ResourceType, clusterDefault, layers))
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return done(resp)
}

// describeConfig reports one config. Its source is that of the first of its
// synonyms, as Kafka reports it (DEFAULT_CONFIG when there are none), and a
// name the tables do not know is sensitive, as Kafka treats a config whose
// type it cannot tell: its value is not shown.
func describeConfig(req *kmsg.DescribeConfigsRequest, name string, resourceType kmsg.ConfigResourceType, clusterDefault bool, layers config.Layers) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name = name
	var d config.Def
	var known bool
	var v string
	var src config.Source
	if resourceType == resourceTopic {
		d, known = config.TopicDefs[name]
		v, src = layers.TopicValue(name)
	} else {
		d, known = config.BrokerDefs[name]
		c.ReadOnly = !d.Dynamic
		var ok bool
		if clusterDefault {
			v, ok = layers.DynamicDefault[name]
			src = config.SourceDynamicDefaultBroker
		} else {
			v, src, ok = layers.BrokerValue(name)
		}
		if !ok {
			v = ""
		}
	}
	syns := synonyms(name, resourceType, clusterDefault, !known || d.Type == config.TypePassword, layers)
	switch {
	case !known, d.Type == config.TypePassword: // a key or a password is never shown
		c.IsSensitive = true
	case v != "" || src != config.SourceDefault || resourceType == resourceTopic:
		// A topic config's empty default is shown as "", as Kafka shows
		// an empty list (the throttled replicas); a broker property
		// without a value is null, as Kafka's null defaults are.
		c.Value = &v
	}
	c.Source = kmsg.ConfigSource(config.SourceDefault)
	if len(syns) > 0 {
		c.Source = syns[0].Source
	}
	c.IsDefault = c.Source == kmsg.ConfigSource(config.SourceDefault)
	c.ConfigType = kmsg.ConfigType(d.Type) // 0 (UNKNOWN) for an unknown name
	if req.IncludeDocumentation && d.Doc != "" {
		doc := d.Doc
		c.Documentation = &doc
	}
	if req.IncludeSynonyms {
		c.ConfigSynonyms = syns
	}
	return c
}

// describeGroupConfig reports one config of group id, as Kafka's
// ConfigHelper: the group's own value (source GROUP_CONFIG) or the broker
// property that supplies its default (source DEFAULT_CONFIG), which is its
// one synonym.
func (b *Broker) describeGroupConfig(req *kmsg.DescribeConfigsRequest, img *metadata.Image, id, name string) kmsg.DescribeConfigsResponseResourceConfig {
	d := config.GroupDefs[name]
	v, set := img.GroupConfigs[id][name]
	src := kmsg.ConfigSourceGroupConfig
	if !set {
		v, src = b.groupConfigDefault(img, d), kmsg.ConfigSourceDefaultConfig
	}
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name, c.Value, c.Source = name, &v, src
	c.IsDefault = !set
	c.ConfigType = kmsg.ConfigType(d.Type)
	if req.IncludeDocumentation && d.Doc != "" {
		c.Documentation = strPtr(d.Doc)
	}
	if req.IncludeSynonyms {
		s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		s.Name, s.Value, s.Source = name, &v, src
		c.ConfigSynonyms = append(c.ConfigSynonyms, s)
	}
	return c
}

// groupConfigDefault is a group config's value where the group sets none:
// the broker property its synonym names.
func (b *Broker) groupConfigDefault(img *metadata.Image, d config.Def) string {
	if len(d.Synonyms) > 0 {
		if v, _, ok := b.brokerLayers(img).BrokerValue(d.Synonyms[0].Name); ok {
			return v
		}
		if bd, ok := config.BrokerDefs[d.Synonyms[0].Name]; ok {
			return bd.Default
		}
	}
	return d.Default
}

// checkGroupConfigs validates the configs group id would have after a
// change (set; with replaceAll, only those), as Kafka's GroupConfig.validate:
// each within the bounds the broker's group.consumer.min/max.* properties
// give, and the session timeout above the heartbeat interval.
func (b *Broker) checkGroupConfigs(img *metadata.Image, id string, set map[string]*string, replaceAll bool) (int16, string) {
	merged := map[string]string{}
	if !replaceAll {
		maps.Copy(merged, img.GroupConfigs[id])
	}
	for k, v := range set {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = *v
		}
	}
	value := func(name string) int64 {
		if v, ok := merged[name]; ok {
			return config.Int64(v, 0)
		}
		return config.Int64(b.groupConfigDefault(img, config.GroupDefs[name]), 0)
	}
	bounds := []struct{ name, min, max string }{
		{group.GroupSessionTimeoutConfig, "group.consumer.min.session.timeout.ms", "group.consumer.max.session.timeout.ms"},
		{group.GroupHeartbeatIntervalConfig, "group.consumer.min.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms"},
	}
	for _, bd := range bounds {
		if _, ok := merged[bd.name]; !ok {
			continue // the broker's own value, whatever it is
		}
		switch v := value(bd.name); {
		case v < b.brokerInt(img, bd.min):
			return kerr.InvalidConfig.Code, bd.name + " must be greater than or equal to " + bd.min
		case v > b.brokerInt(img, bd.max):
			return kerr.InvalidConfig.Code, bd.name + " must be less than or equal to " + bd.max
		}
	}
	if value(group.GroupSessionTimeoutConfig) <= value(group.GroupHeartbeatIntervalConfig) {
		return kerr.InvalidConfig.Code, group.GroupSessionTimeoutConfig + " must be greater than " + group.GroupHeartbeatIntervalConfig
	}
	return 0, ""
}

// synonyms lists where a config is set, as Kafka's DescribeConfigs does
// (ConfigHelper.configSynonyms): for each source, most specific first, the
// broker properties of the config's group (log.retention.ms, .minutes,
// .hours) that the source sets; then everything before the first entry for
// the config's own broker name is dropped, so a topic's retention.ms set
// only through log.retention.hours has no synonyms. A topic override comes
// first; the cluster default resource keeps only its own entries.
func synonyms(name string, resourceType kmsg.ConfigResourceType, clusterDefault, sensitive bool, layers config.Layers) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	lead := name
	if resourceType == resourceTopic {
		lead = ""
		if d := config.TopicDefs[name]; len(d.Synonyms) > 0 {
			lead = d.Synonyms[0].Name
		}
	}
	syn := func(name, value string, src config.Source) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
		s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		s.Name, s.Source = name, kmsg.ConfigSource(src)
		if !sensitive {
			s.Value = &value
		}
		return s
	}
	var out []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(name, value string, src config.Source) { out = append(out, syn(name, value, src)) }
	if lead != "" {
		group := config.BrokerSynonyms(lead)
		sources := []struct {
			values map[string]string
			src    config.Source
		}{
			{layers.DynamicBroker, config.SourceDynamicBroker},
			{layers.DynamicDefault, config.SourceDynamicDefaultBroker},
			{layers.Static, config.SourceStaticBroker},
		}
		for _, s := range sources {
			for _, n := range group {
				if v, ok := s.values[n]; ok {
					add(n, v, s.src)
				}
			}
		}
		for _, n := range group {
			if bd, ok := config.BrokerDefs[n]; ok && bd.Default != "" {
				add(n, bd.Default, config.SourceDefault)
			}
		}
		i := slices.IndexFunc(out, func(s kmsg.DescribeConfigsResponseResourceConfigConfigSynonym) bool { return s.Name == lead })
		if i < 0 {
			i = len(out)
		}
		out = out[i:]
		if clusterDefault {
			out = slices.DeleteFunc(out, func(s kmsg.DescribeConfigsResponseResourceConfigConfigSynonym) bool {
				return s.Source != kmsg.ConfigSource(config.SourceDynamicDefaultBroker)
			})
		}
	}
	if v, ok := layers.Topic[name]; ok && resourceType == resourceTopic {
		out = slices.Insert(out, 0, syn(name, v, config.SourceTopic))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// checkBrokerResource accepts this node's id or "" (the cluster default).
// A forwarded request was checked by the broker that received it, which
// answered for any id but its own (Kafka's ConfigAdminManager.preprocess),
// so the active controller accepts any broker id (as Kafka's controller
// validates only that the name is one).
func (b *Broker) checkBrokerResource(name string, forwarded bool) (int16, string) {
	if name == "" || name == strconv.Itoa(int(b.cfg.NodeID)) {
		return 0, ""
	}
	id, err := strconv.Atoi(name)
	if err != nil || id < 0 {
		return kerr.InvalidRequest.Code, "broker resource name must be a broker id, not " + strconv.Quote(name)
	}
	if forwarded {
		return 0, ""
	}
	return kerr.InvalidRequest.Code, fmt.Sprintf("Unexpected broker id, expected %d, but received %s: send the request to broker %s", b.cfg.NodeID, name, name)
}

// validateChange checks one new value for a resource.
func (b *Broker) validateChange(resourceType kmsg.ConfigResourceType, name string, value *string) (int16, string) {
	var err error
	switch resourceType {
	case resourceTopic:
		if value == nil {
			if _, ok := config.TopicDefs[name]; !ok {
				return kerr.InvalidConfig.Code, "unknown topic config " + name
			}
			return 0, ""
		}
		err = config.CheckTopicConfig(name, *value)
	case resourceBroker:
		// As Kafka: a name it does not know is stored as given, one it
		// knows must be dynamic, and a bad value is INVALID_REQUEST
		// (KAFKA-13609 keeps that code for compatibility).
		d, ok := config.BrokerDefs[name]
		if !ok {
			return 0, ""
		}
		if !d.Dynamic {
			return kerr.InvalidRequest.Code, "broker config " + name + " cannot be changed at runtime; set it in the properties file and restart"
		}
		if value != nil {
			if err := d.Check(*value); err != nil {
				return kerr.InvalidRequest.Code, err.Error()
			}
		}
	case resourceGroup:
		d, ok := config.GroupDefs[name]
		switch {
		case !ok:
			return kerr.InvalidConfig.Code, "Unknown group config name: " + name
		case value != nil:
			err = d.Check(*value)
		}
	}
	if err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	return 0, ""
}

// checkResource validates the resource a change addresses.
func (b *Broker) checkResource(img *metadata.Image, resourceType kmsg.ConfigResourceType, name string, forwarded bool) (int16, string) {
	switch resourceType {
	case resourceTopic:
		if img.Topics[name] == nil {
			return kerr.UnknownTopicOrPartition.Code, "unknown topic " + name
		}
		return 0, ""
	case resourceBroker:
		return b.checkBrokerResource(name, forwarded)
	case resourceGroup:
		if name == "" {
			return kerr.InvalidRequest.Code, msgEmptyGroup
		}
		return 0, ""
	}
	return kerr.InvalidRequest.Code, fmt.Sprintf("resource type %d cannot be altered", resourceType)
}

// resourceKey names a config resource, to find one named twice in a request.
type resourceKey struct {
	typ  kmsg.ConfigResourceType
	name string
}

// twice marks the resources a request names more than once: Kafka refuses
// all of them ("Each resource must appear at most once").
func twice[R any](rs []R, key func(R) resourceKey) []bool {
	seen := make(map[resourceKey]int, len(rs))
	for _, r := range rs {
		seen[key(r)]++
	}
	out := make([]bool, len(rs))
	for i, r := range rs {
		out[i] = seen[key(r)] > 1
	}
	return out
}

const msgTwice = "Each resource must appear at most once."

func alterKey(r kmsg.AlterConfigsRequestResource) resourceKey {
	return resourceKey{r.ResourceType, r.ResourceName}
}

func incrementalKey(r kmsg.IncrementalAlterConfigsRequestResource) resourceKey {
	return resourceKey{r.ResourceType, r.ResourceName}
}

// checkAlter validates one resource of an AlterConfigs request and returns
// the overrides it sets.
func (b *Broker) checkAlter(img *metadata.Image, r kmsg.AlterConfigsRequestResource, forwarded bool) (map[string]*string, int16, string) {
	code, msg := b.checkResource(img, r.ResourceType, r.ResourceName, forwarded)
	set := make(map[string]*string, len(r.Configs))
	for _, c := range r.Configs {
		if code != 0 {
			break
		}
		switch _, dup := set[c.Name]; {
		case dup:
			code, msg = kerr.InvalidRequest.Code, "Error due to duplicate config keys: "+c.Name
		case c.Value == nil:
			code, msg = kerr.InvalidRequest.Code, "Null value not supported for : "+c.Name
		default:
			code, msg = b.validateChange(r.ResourceType, c.Name, c.Value)
		}
		set[c.Name] = c.Value
	}
	if code == 0 && r.ResourceType == resourceGroup {
		code, msg = b.checkGroupConfigs(img, r.ResourceName, set, true)
	}
	return set, code, msg
}

// checkIncremental validates one resource of an IncrementalAlterConfigs
// request and returns the entries it sets (nil: deletes).
func (b *Broker) checkIncremental(img *metadata.Image, r kmsg.IncrementalAlterConfigsRequestResource, forwarded bool) (map[string]*string, int16, string) {
	code, msg := b.checkResource(img, r.ResourceType, r.ResourceName, forwarded)
	set := make(map[string]*string, len(r.Configs))
	var current map[string]string
	if code == 0 {
		current = b.overrides(img, r.ResourceType, r.ResourceName)
	}
	for _, c := range r.Configs {
		if code != 0 {
			break
		}
		if _, dup := set[c.Name]; dup {
			code, msg = kerr.InvalidRequest.Code, "Error due to duplicate config keys: "+c.Name
			break
		}
		var v *string
		switch c.Op {
		case 0: // SET
			v = c.Value
			if v == nil {
				code, msg = kerr.InvalidRequest.Code, "Null value not supported for : "+c.Name
			}
		case 1: // DELETE
		case 2, 3: // APPEND, SUBTRACT: list configs only
			v, code, msg = listOp(r.ResourceType, c, current)
		default:
			code, msg = kerr.InvalidRequest.Code, fmt.Sprintf("unknown operation %d", c.Op)
		}
		if code == 0 {
			code, msg = b.validateChange(r.ResourceType, c.Name, v)
		}
		set[c.Name] = v
	}
	if code == 0 && r.ResourceType == resourceGroup {
		code, msg = b.checkGroupConfigs(img, r.ResourceName, set, false)
	}
	return set, code, msg
}

func handleAlterConfigs(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	img := b.image()
	dup := twice(req.Resources, alterKey)
	for i, r := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		set, code, msg := b.checkAlter(img, r, forwardedRequest(ctx))
		if dup[i] {
			code, msg = kerr.InvalidRequest.Code, msgTwice
		}
		rr.ErrorCode, rr.ErrorMessage = b.applyConfigs(ctx, r.ResourceType, r.ResourceName, set, true, req.ValidateOnly, code, msg)
		resp.Resources = append(resp.Resources, rr)
	}
	return done(resp)
}

func handleIncrementalAlterConfigs(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	img := b.image()
	dup := twice(req.Resources, incrementalKey)
	for i, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		set, code, msg := b.checkIncremental(img, r, forwardedRequest(ctx))
		if dup[i] {
			code, msg = kerr.InvalidRequest.Code, msgTwice
		}
		rr.ErrorCode, rr.ErrorMessage = b.applyConfigs(ctx, r.ResourceType, r.ResourceName, set, false, req.ValidateOnly, code, msg)
		resp.Resources = append(resp.Resources, rr)
	}
	return done(resp)
}

// forwardConfigs forwards an AlterConfigs or IncrementalAlterConfigs
// request as Kafka's brokers do (ConfigAdminManager.preprocess): the broker
// that receives it answers for the broker resources itself where they fail
// its checks (a name other than its own id or "", a bad value, a resource
// named twice) and forwards the rest to the active controller, then answers
// every resource in the order asked. It reports false when this node
// handles the whole request (it is the active controller, or nothing
// forwards).
func (b *Broker) forwardConfigs(ctx context.Context, sreq *server.Request) (kmsg.Response, bool) {
	if b.cfg.Forward == nil {
		return nil, false
	}
	img := b.image()
	sub := func(body kmsg.Request) *server.Request {
		return &server.Request{Key: sreq.Key, Version: sreq.Version, Body: body}
	}
	switch req := sreq.Body.(type) {
	case *kmsg.AlterConfigsRequest:
		errs, rest := preprocess(req.Resources, alterKey, func(r kmsg.AlterConfigsRequestResource) (int16, string) {
			_, code, msg := b.checkAlter(img, r, false)
			return code, msg
		})
		resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
		var fwd []kmsg.AlterConfigsResponseResource
		if len(rest) > 0 {
			part := *req
			part.Resources = rest
			r, ok := b.forward(ctx, sub(&part))
			if !ok {
				return nil, false
			}
			resp.ThrottleMillis, fwd = r.(*kmsg.AlterConfigsResponse).ThrottleMillis, r.(*kmsg.AlterConfigsResponse).Resources
		}
		resp.Resources = mergePreprocessed(req.Resources, errs, fwd, func(r kmsg.AlterConfigsRequestResource, e preprocessed) kmsg.AlterConfigsResponseResource {
			rr := kmsg.NewAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode, rr.ErrorMessage = r.ResourceType, r.ResourceName, e.code, &e.msg
			return rr
		})
		return resp, true
	case *kmsg.IncrementalAlterConfigsRequest:
		errs, rest := preprocess(req.Resources, incrementalKey, func(r kmsg.IncrementalAlterConfigsRequestResource) (int16, string) {
			_, code, msg := b.checkIncremental(img, r, false)
			return code, msg
		})
		resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		var fwd []kmsg.IncrementalAlterConfigsResponseResource
		if len(rest) > 0 {
			part := *req
			part.Resources = rest
			r, ok := b.forward(ctx, sub(&part))
			if !ok {
				return nil, false
			}
			resp.ThrottleMillis, fwd = r.(*kmsg.IncrementalAlterConfigsResponse).ThrottleMillis, r.(*kmsg.IncrementalAlterConfigsResponse).Resources
		}
		resp.Resources = mergePreprocessed(req.Resources, errs, fwd, func(r kmsg.IncrementalAlterConfigsRequestResource, e preprocessed) kmsg.IncrementalAlterConfigsResponseResource {
			rr := kmsg.NewIncrementalAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode, rr.ErrorMessage = r.ResourceType, r.ResourceName, e.code, &e.msg
			return rr
		})
		return resp, true
	}
	return b.forward(ctx, sreq)
}

// preprocess runs the receiving broker's checks: on broker resources, and
// for resources named twice. It returns each resource's error and the
// resources to forward.
func preprocess[R any](rs []R, key func(R) resourceKey, check func(R) (int16, string)) ([]preprocessed, []R) {
	dup := twice(rs, key)
	errs := make([]preprocessed, len(rs))
	var rest []R
	for i, r := range rs {
		switch {
		case dup[i]:
			errs[i] = preprocessed{kerr.InvalidRequest.Code, msgTwice}
		case key(r).typ == resourceBroker:
			errs[i].code, errs[i].msg = check(r)
		}
		if errs[i].code == 0 {
			rest = append(rest, r)
		}
	}
	return errs, rest
}

// preprocessed is the receiving broker's answer for one resource (code 0:
// forwarded).
type preprocessed struct {
	code int16
	msg  string
}

// mergePreprocessed answers every resource in request order: the receiving
// broker's error where it found one, else the controller's answer, which
// lists the forwarded resources in order. A controller answer short of
// resources (never expected) leaves the rest UNKNOWN_SERVER_ERROR rather
// than unanswered.
func mergePreprocessed[Req, Resp any](rs []Req, errs []preprocessed, fwd []Resp, answer func(Req, preprocessed) Resp) []Resp {
	out := make([]Resp, 0, len(rs))
	for i, r := range rs {
		switch {
		case errs[i].code != 0:
			out = append(out, answer(r, errs[i]))
		case len(fwd) > 0:
			out = append(out, fwd[0])
			fwd = fwd[1:]
		default:
			out = append(out, answer(r, preprocessed{kerr.UnknownServerError.Code, "the active controller did not answer for this resource"}))
		}
	}
	return out
}

// applyConfigs records a validated change in the metadata log unless
// validation failed (code != 0) or the request only validates, and returns
// the resource's error code and message.
func (b *Broker) applyConfigs(ctx context.Context, resourceType kmsg.ConfigResourceType, name string,
	set map[string]*string, replaceAll, validateOnly bool, code int16, msg string) (int16, *string) {
	if code == 0 && !validateOnly {
		if err := b.ctrl.AlterConfigs(ctx, int8(resourceType), name, set, replaceAll); err != nil {
			code, msg = b.errorCode(err), err.Error()
		} else {
			b.cfg.OnMetadataChange()
		}
	}
	if code == 0 {
		return 0, nil
	}
	return code, &msg
}

// overrides are the values currently set on a resource itself.
func (b *Broker) overrides(img *metadata.Image, resourceType kmsg.ConfigResourceType, name string) map[string]string {
	switch resourceType {
	case resourceTopic:
		if t := img.Topics[name]; t != nil {
			return t.Configs
		}
		return nil
	case resourceGroup:
		return img.GroupConfigs[name]
	}
	return img.BrokerConfigs[name]
}

func listOp(resourceType kmsg.ConfigResourceType, c kmsg.IncrementalAlterConfigsRequestResourceConfig, current map[string]string) (*string, int16, string) {
	defs := config.TopicDefs
	switch resourceType {
	case resourceBroker:
		defs = config.BrokerDefs
	case resourceGroup:
		defs = config.GroupDefs
	}
	d, ok := defs[c.Name]
	if !ok {
		return nil, kerr.InvalidConfig.Code, "unknown config " + c.Name
	}
	if d.Type != config.TypeList {
		return nil, kerr.InvalidConfig.Code, c.Name + " is not a list; APPEND and SUBTRACT apply to lists only"
	}
	cur, ok := current[c.Name]
	if !ok {
		cur = d.Default
	}
	var items []string
	for _, s := range strings.Split(cur, ",") {
		if s = strings.TrimSpace(s); s != "" {
			items = append(items, s)
		}
	}
	var arg []string
	if c.Value != nil {
		for _, s := range strings.Split(*c.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				arg = append(arg, s)
			}
		}
	}
	for _, a := range arg {
		i := slices.Index(items, a)
		if c.Op == 2 && i < 0 {
			items = append(items, a)
		} else if c.Op == 3 && i >= 0 {
			items = slices.Delete(items, i, i+1)
		}
	}
	v := strings.Join(items, ",")
	return &v, 0, ""
}
