package kafka

import (
	"fmt"
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var unsupportedCode = kerr.UnsupportedVersion.Code

// unsupportedResponse answers a request we decoded but do not implement (an
// API we lack, or a version outside our range) with a well-formed response of
// the same key and version whose every error code is UNSUPPORTED_VERSION.
//
// Many responses carry errors only per topic, partition or resource, so an
// empty response would look like success to the client. mirror copies the
// request's lists into the response (topics, partitions, groups...) by field
// name, with their identifying fields, and sets each ErrorCode it finds.
// Reflection is fine here: this path is rare and off the hot path, and it
// saves a hand-written answer for each of the ~90 APIs kmsg knows.
func unsupportedResponse(req kmsg.Request) kmsg.Response {
	resp := req.ResponseKind()
	msg := fmt.Sprintf("sluice does not support %s v%d", kmsg.NameForKey(req.Key()), req.GetVersion())
	mirror(reflect.ValueOf(req).Elem(), reflect.ValueOf(resp).Elem(), unsupportedCode, &msg, 0)
	return resp
}

// errorResponse answers req with code in every error field, built like
// unsupportedResponse.
func errorResponse(req kmsg.Request, code int16, msg string) kmsg.Response {
	resp := req.ResponseKind()
	mirror(reflect.ValueOf(req).Elem(), reflect.ValueOf(resp).Elem(), code, &msg, 0)
	return resp
}

// maxMirrorDepth bounds recursion; kmsg messages nest three or four levels.
const maxMirrorDepth = 6

var (
	stringPtrType = reflect.TypeFor[*string]()
	uuidType      = reflect.TypeFor[[16]byte]()
)

// mirror fills dst (a response struct) from src (the matching request
// struct, or an invalid Value when there is none).
func mirror(src, dst reflect.Value, code int16, msg *string, depth int) {
	if depth > maxMirrorDepth {
		return
	}
	t := dst.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		dv := dst.Field(i)
		if !f.IsExported() || f.Name == "Version" || f.Name == "UnknownTags" {
			continue
		}
		switch {
		case f.Name == "ErrorCode" && dv.Kind() == reflect.Int16:
			dv.SetInt(int64(code))
			continue
		case f.Name == "ErrorMessage" && dv.Type() == stringPtrType:
			dv.Set(reflect.ValueOf(msg))
			continue
		}
		if !src.IsValid() {
			continue
		}
		sv := src.FieldByName(f.Name)
		if !sv.IsValid() {
			continue
		}
		switch {
		case dv.Kind() == reflect.Slice && sv.Kind() == reflect.Slice:
			mirrorSlice(sv, dv, code, msg, depth)
		case sv.Type() == dv.Type() && isIdentifier(dv.Type()):
			dv.Set(sv)
		}
	}
}

// mirrorSlice builds one response element per request element.
func mirrorSlice(sv, dv reflect.Value, code int16, msg *string, depth int) {
	et := dv.Type().Elem()
	if et.Kind() != reflect.Struct {
		if sv.Type() == dv.Type() && isIdentifier(et) {
			dv.Set(sv)
		}
		return
	}
	n := sv.Len()
	out := reflect.MakeSlice(dv.Type(), n, n)
	for j := range n {
		elem := out.Index(j)
		if d, ok := elem.Addr().Interface().(interface{ Default() }); ok {
			d.Default()
		}
		se := sv.Index(j)
		if se.Kind() == reflect.Struct {
			mirror(se, elem, code, msg, depth+1)
			continue
		}
		// A list of bare partition numbers in the request (for example
		// OffsetFetch) becomes a list of partition results.
		mirror(reflect.Value{}, elem, code, msg, depth+1)
		if p := elem.FieldByName("Partition"); p.IsValid() && p.Type() == se.Type() {
			p.Set(se)
		}
	}
	dv.Set(out)
}

// isIdentifier reports whether a field of type t can name something (topic,
// partition, group, resource) and so is worth copying into the response.
func isIdentifier(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Int8, reflect.Int32:
		return true
	}
	return t == stringPtrType || t == uuidType
}

// apiVersionsFallback is Kafka's answer to an ApiVersions request of a
// version it does not know: version 0, UNSUPPORTED_VERSION, and the list of
// what it does support, from which the client picks a version to retry with.
func apiVersionsFallback(apis *apiTable) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = unsupportedCode
	resp.ApiKeys = apiKeys(apis)
	return resp
}
