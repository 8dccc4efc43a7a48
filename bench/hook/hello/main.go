// Command hello is the floor of the hook benchmark: the cheapest static Go
// program, started the same way as the hook.
package main

import "os"

func main() { os.Stdout.WriteString("hello\n") }
