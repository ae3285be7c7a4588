//go:build !linux

// Package netns builds networks of Linux network namespaces for fault
// tests; on other systems it has only this note.
package netns
