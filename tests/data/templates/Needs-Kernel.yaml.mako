## Test template: uses vm.kernel without checking that it is set.
qemu:
  executable: [/bin/true]
  arguments:
    - -kernel
    - ${arg(vm.kernel.image)}
