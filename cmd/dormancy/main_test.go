package main

import (
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
