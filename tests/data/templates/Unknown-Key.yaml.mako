## Test template: uses a key the configuration does not have.
qemu:
  executable: [/bin/true]
  arguments:
    - ${vm.kernelImage}
