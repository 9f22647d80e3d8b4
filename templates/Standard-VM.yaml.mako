## vmrunner's standard VM type: a q35 PC for QEMU 7.2 or later.
##
## Output: a YAML document with "qemu" (and "swtpm" when the VM has a TPM), each with
## "executable" (candidates) and "arguments". Every ${...} is escaped for QEMU option strings
## (',' -> ',,'); arg(x) inserts x verbatim where QEMU does not split the argument; opt() builds
## an option string from escaped values. See docs/guide/templates.md.
<%
    spice = vm.display.spice if vm.display else None
%>\
% if vm.useTpm:
swtpm:
  executable: [/usr/bin/swtpm, swtpm]
  arguments:
    - socket
    - --tpm2
    - --tpmstate
    - dir=${nocomma(tpmStateDir)},mode=0600
    - --ctrl
    - type=unixio,path=${nocomma(swtpmSocket)},mode=0600
    ## exit when QEMU closes the connection
    - --terminate
% endif
qemu:
  executable: [/usr/bin/qemu-system-x86_64, /usr/libexec/qemu-kvm, qemu-system-x86_64]
  arguments:
    ## Start paused: the runner connects QMP and applies the runtime settings, then sends "cont".
    - -S
    - -nodefaults
    - -no-user-config
    - -name
    - ${opt(None, {"guest": vm.name, "debug-threads": True})}
    - -uuid
    - ${arg(uuid)}
    - -sandbox
    - on,obsolete=deny,elevateprivileges=deny,spawn=allow,resourcecontrol=deny
    - -machine
    - ${opt("q35", {"usb": False, "vmport": False, "dump-guest-core": False, "hpet": False, "smm": True if secureBoot else None, "pflash0": "fw-code" if firmwareCode else None, "pflash1": "fw-vars" if firmwareCode else None})}
% if accelerator != "none":
    - -accel
    - ${accelerator}
% endif
% if accelerator == "kvm":
    - -global
    - kvm-pit.lost_tick_policy=delay
% endif
    - -cpu
    ## model and features are validated names (QEMU cannot escape commas in -cpu)
    - ${arg(",".join([cpuModel, *vm.cpuFeatures]))}
    - -smp
    - ${opt(None, {"cpus": currentCpus, "maxcpus": vm.maximumCpus, "sockets": vm.sockets, "dies": vm.diesPerSocket, "cores": vm.coresPerDie, "threads": vm.threadsPerCore})}
    - -m
    - ${ramSize}
    - -rtc
    - ${opt(None, {"base": vm.rtcBase, "clock": vm.rtcClock, "driftfix": "slew"})}
    - -global
    - ICH9-LPC.disable_s3=1
    - -global
    - ICH9-LPC.disable_s4=1
    - -display
    - none
    ## QMP, for the runner
    - -chardev
    - ${opt("socket", {"id": "charmonitor", "path": monitorSocket, "server": True, "wait": False})}
    - -mon
    - chardev=charmonitor,id=monitor,mode=control
% if firmwareCode:
    ## UEFI: read-only code, per-VM variable store
    - -blockdev
    - ${opt(None, {"driver": "file", "node-name": "fw-code-file", "filename": firmwareCode, "read-only": True})}
    - -blockdev
    - driver=raw,node-name=fw-code,file=fw-code-file,read-only=on
    - -blockdev
    - ${opt(None, {"driver": "file", "node-name": "fw-vars-file", "filename": firmwareVars})}
    - -blockdev
    - driver=raw,node-name=fw-vars,file=fw-vars-file
% endif
% if secureBoot:
    - -global
    - driver=cfi.pflash01,property=secure,value=on
% endif
% if vm.bootMenu:
    - -boot
    - menu=on
% endif
% if vm.kernel:
    ## direct kernel boot
    - -kernel
    - ${arg(vm.kernel.image)}
%   if vm.kernel.initrd:
    - -initrd
    - ${arg(vm.kernel.initrd)}
%   endif
%   if vm.kernel.cmdline:
    - -append
    - ${arg(vm.kernel.cmdline)}
%   endif
% endif
    - -device
    - virtio-balloon-pci,id=balloon0
    - -object
    - rng-random,id=rng0-backend,filename=/dev/urandom
    - -device
    - virtio-rng-pci,rng=rng0-backend,id=rng0
    ## pvpanic (ISA, ACPI id QEMU0001): the guest reports its kernel panic to QEMU
    ## (GUEST_PANICKED); what follows is vm.onPanic, set by the runner over QMP (set-action)
    - -device
    - pvpanic,id=pvpanic0
% if vm.serialConsole:
    ## serial console: QEMU listens on serialSocket, the runner reads it (log, ring buffer)
    ## and serves consoleSocket to `vmrunner console`
    - -chardev
    - ${opt("socket", {"id": "charserial0", "path": serialSocket, "server": True, "wait": False})}
    - -device
    - isa-serial,chardev=charserial0,id=serial0,index=0
% endif
    - -device
    - virtio-serial-pci,id=virtio-serial0
% if vm.guestAgent:
    - -chardev
    - ${opt("socket", {"id": "guest-agent-socket", "path": guestAgentSocket, "server": True, "wait": False})}
    - -device
    - virtserialport,bus=virtio-serial0.0,id=channel0,name=org.qemu.guest_agent.0,chardev=guest-agent-socket
% endif
    ## the vmop agent (auto-login, vm.display.loggedInUser): a line protocol, see docs/guide/live-changes.md
    - -chardev
    - ${opt("socket", {"id": "vmop-agent-socket", "path": vmopAgentSocket, "server": True, "wait": False})}
    - -device
    - virtserialport,bus=virtio-serial0.0,id=channel1,name=org.jdrupes.vmop_agent.0,chardev=vmop-agent-socket
% if vm.useTpm:
    - -chardev
    - ${opt("socket", {"id": "chrtpm", "path": swtpmSocket})}
    - -tpmdev
    - emulator,id=tpm0,chardev=chrtpm
    - -device
    - ${opt(vm.tpmModel, {"tpmdev": "tpm0"})}
% endif
% for i, nic in enumerate(vm.network):
    - -netdev
%   if nic.type == "user":
    - ${opt("user", {"id": "hostnet%d" % i, "net": nic.net, "hostfwd": nic.hostForwards})}
%   else:
    - ${opt("bridge", {"id": "hostnet%d" % i, "br": nic.bridge})}
%   endif
    - -device
    - ${opt(nic.device, {"netdev": "hostnet%d" % i, "id": "net%d" % i, "mac": nic.mac})}
% endfor
% for i, disk in enumerate(disks):
    - -blockdev
%   if disk.file:
    - ${opt(None, {"driver": "file", "node-name": "disk%d-file" % i, "filename": disk.file, "read-only": disk.readOnly, "discard": "unmap"})}
%   else:
    - ${opt(None, {"driver": "host_device", "node-name": "disk%d-file" % i, "filename": disk.device, "read-only": disk.readOnly, "aio": "native", "cache.direct": True, "discard": "unmap"})}
%   endif
    - -blockdev
    - ${opt(None, {"driver": disk.format, "node-name": "disk%d" % i, "file": "disk%d-file" % i, "read-only": disk.readOnly, "discard": "unmap"})}
    - -device
    - ${opt("virtio-blk-pci", {"drive": "disk%d" % i, "id": "disk%d" % i, "bootindex": disk.bootindex})}
% endfor
% if any(cd.bus == "scsi" for cd in cdroms):
    - -device
    - virtio-scsi-pci,id=scsi0
% endif
<% ide_port = 0 %>\
% for n, cd in enumerate(cdroms):
%   if cd.file:
    ## a CD-ROM with media; media changes address the device ids cdN
    - -blockdev
    - ${opt(None, {"driver": "file", "node-name": "cd%d-file" % n, "filename": cd.file, "read-only": True})}
    - -blockdev
    - driver=raw,node-name=cd${n},file=cd${n}-file,read-only=on
%   endif
    - -device
%   if cd.bus == "scsi":
    - ${opt("scsi-cd", {"bus": "scsi0.0", "id": "cd%d" % n, "drive": ("cd%d" % n) if cd.file else None, "bootindex": cd.bootindex})}
%   else:
    - ${opt("ide-cd", {"bus": "ide.%d" % ide_port, "id": "cd%d" % n, "drive": ("cd%d" % n) if cd.file else None, "bootindex": cd.bootindex})}
<%     ide_port += 1 %>\
%   endif
% endfor
% if cloudInitImage:
    ## cloud-init NoCloud data (an ISO image labelled "cidata", made by vmrunner)
    - -blockdev
    - ${opt(None, {"driver": "file", "node-name": "cidata-file", "filename": cloudInitImage, "read-only": True})}
    - -blockdev
    - driver=raw,node-name=cidata,file=cidata-file,read-only=on
    - -device
    - virtio-blk-pci,drive=cidata,id=cidata
% endif
% if vm.display:
    - -device
    - ${opt("virtio-vga", {"id": "video0", "max_outputs": vm.display.outputs})}
    - -device
    - qemu-xhci,id=usb,p2=15,p3=15
    - -device
    - usb-tablet,bus=usb.0
% endif
% if spice:
%   if spicePasswordFile:
    ## the password is read by QEMU from the file, never passed on the command line
    - -object
    - ${opt("secret", {"id": "spice-password", "file": spicePasswordFile, "format": "raw"})}
%   endif
    - -spice
    - ${opt(None, {"port": spice.port, "addr": spice.address, "password-secret": "spice-password" if spicePasswordFile else None, "disable-ticketing": None if spicePasswordFile else True, "streaming-video": spice.streamingVideo, "seamless-migration": True})}
    - -chardev
    - spicevmc,id=vdagentdev,name=vdagent
    - -device
    - virtserialport,bus=virtio-serial0.0,name=com.redhat.spice.0,chardev=vdagentdev
%   for r in range(spice.usbRedirects):
    - -chardev
    - spicevmc,id=charredir${r},name=usbredir
    - -device
    - usb-redir,id=redir${r},chardev=charredir${r}
%   endfor
%   if vm.audio:
    - -audiodev
    - spice,id=audio0
    - -device
    - ich9-intel-hda,id=sound0
    - -device
    - hda-duplex,audiodev=audio0
%   endif
% endif
