## Test template: a control line that is never closed.
qemu:
  executable: [/bin/true]
% for x in vm.drives:
  arguments: []
