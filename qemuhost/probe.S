/* The accelerator probe: a boot sector that SeaBIOS loads at 0x7c00.
 *
 * It builds one 2 MiB identity-mapped page, enters 64-bit long mode with
 * paging (the CPU mode a Linux kernel runs in), then runs a bounded loop of
 * LOOPS memory read-modify-writes, writes MARKER to port 0x402 (isa-debugcon)
 * and asks qemu to exit with code 33 (isa-debug-exit, (0x10 << 1) | 1).
 * The loop is what makes the probe a measure: TCG runs it in about 0.3 s,
 * a working KVM in a few milliseconds, an emulating "KVM" in many seconds.
 *
 * qemuhost/probe.py carries the assembled bytes; tests/unit/test_qemuhost.py
 * assembles this file again (GNU as + ld) and compares.
 *   as --64 -o probe.o probe.S
 *   ld -m elf_x86_64 -Ttext=0x7c00 --oformat binary -e _start -o probe.bin probe.o
 */
    .code16
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    mov $0x1000, %di
    mov $0x1800, %cx
    xor %ax, %ax
    rep stosw
    movw $0x2003, 0x1000
    movw $0x3003, 0x2000
    movw $0x0083, 0x3000
    lgdt gdt_desc
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0x1000, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmp $0x08, $long_mode

    .code64
long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov loops, %ecx
1:  mov %ecx, %eax
    and $0xffff, %eax
    add %ecx, 0x10000(,%rax,4)
    dec %ecx
    jnz 1b
    mov $0x402, %dx
    lea marker(%rip), %rsi
    mov $(marker_end - marker), %ecx
    rep outsb
    mov $0xf4, %dx
    mov $0x10, %eax
    out %eax, %dx
2:  hlt
    jmp 2b

marker:
    .ascii "IMAGEFLEET-PROBE-LONGMODE-OK\n"
marker_end:
    .p2align 3
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
gdt_desc:
    .word gdt_desc - gdt - 1
    .long gdt
loops:
    .long 50000000              /* LOOPS */
