//go:build !linux

package engine

// ownCgroupDir is "": cgroups are Linux's (and commands do not run here).
func ownCgroupDir() string { return "" }
