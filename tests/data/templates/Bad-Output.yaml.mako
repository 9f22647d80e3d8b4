## Test template: produces a document without "qemu".
kvm:
  executable: [/bin/true]
