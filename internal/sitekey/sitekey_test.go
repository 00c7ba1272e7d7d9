package sitekey

import (
	"bytes"
	"testing"
)

func TestSealOpensOnlyForItsSiteAndUse(t *testing.T) {
	dir := t.TempDir()
	site, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreate(dir)
	if err != nil || !bytes.Equal(again.Public(), site.Public()) {
		t.Fatalf("the key kept on disk changed across loads: %v", err)
	}
	other, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(site.Public(), "user KEY1", []byte("salted"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("salted")) {
		t.Fatal("the sealed bytes contain the plaintext")
	}
	if got, err := site.Open("user KEY1", sealed); err != nil || string(got) != "salted" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := other.Open("user KEY1", sealed); err == nil {
		t.Fatal("another site's key opened it")
	}
	if _, err := site.Open("user KEY2", sealed); err == nil {
		t.Fatal("it opened for another user than it was sealed for")
	}
}
