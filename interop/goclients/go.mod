module github.com/gregor-dev/gregor/interop/goclients

go 1.26
