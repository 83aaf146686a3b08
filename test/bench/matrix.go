package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// restrictMatrix narrows the default matrix to the paths, in-flight counts
// and sizes the flags name, for investigating one cell (a profile, a
// regression). Each list must be a subset of the default one, so that a
// restricted run measures cells a full run also has.
func (o *options) restrictMatrix() error {
	var err error
	if o.pathList != "" {
		if o.paths, err = subset("--paths", o.paths, strings.Split(strings.ToUpper(o.pathList), ","), func(s string) (string, error) { return s, nil }); err != nil {
			return err
		}
	}
	if o.inflightList != "" {
		if o.inflights, err = subset("--inflight", o.inflights, strings.Split(o.inflightList, ","), strconv.Atoi); err != nil {
			return err
		}
	}
	if o.sizeList != "" {
		if o.sizes, err = subset("--sizes", o.sizes, strings.Split(o.sizeList, ","), strconv.Atoi); err != nil {
			return err
		}
	}
	return nil
}

// subset parses each of items and returns them in the order of all,
// refusing any that all does not hold.
func subset[T comparable](flag string, all []T, items []string, parse func(string) (T, error)) ([]T, error) {
	var want []T
	for _, it := range items {
		v, err := parse(strings.TrimSpace(it))
		if err != nil || !slices.Contains(all, v) {
			return nil, fmt.Errorf("%s: %q is not one of %v", flag, it, all)
		}
		want = append(want, v)
	}
	return slices.DeleteFunc(slices.Clone(all), func(v T) bool { return !slices.Contains(want, v) }), nil
}
