// SPDX-License-Identifier: GPL-2.0
/*
 * p2mlow - TEST ONLY, for p2m-audit's integration test on real Xen (test/live-xen.test.ts).
 *
 * In a 64-bit Linux 6.1 PV guest it rewrites toolstack-facing words of its own shared_info page
 * (include/xen/interface/arch-x86/xen.h struct arch_shared_info), as an old kernel published them.
 * The guest's own p2m (xen_p2m_addr) is never touched.
 *
 *   lower=1  arch.max_pfn = xen_start_info->nr_pages: the seed case's bound (Linux before the 2021
 *            fix), so Xen's tools (xl save, xl dump-core, xen-mfndump) stop below the pfns that boot
 *            remapped out of e820 holes
 *   churn=1  a kernel thread bumps arch.p2m_generation twice (odd, then even) every millisecond, as
 *            arch/x86/xen/p2m.c does around each p2m page replacement, so a live reader never sees
 *            the same generation before and after its read; rmmod stops it
 *
 * shared_info is mapped at fix_to_virt(FIX_PARAVIRT_BOOTMAP) (arch/x86/xen/enlighten_pv.c
 * xen_setup_shared_info); HYPERVISOR_shared_info itself is not exported to modules.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/delay.h>
#include <xen/xen.h>
#include <xen/interface/xen.h>
#include <asm/xen/hypervisor.h>
#include <asm/fixmap.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("test only: lower arch.max_pfn / churn arch.p2m_generation in a Xen PV guest's shared_info");

static bool lower;
module_param(lower, bool, 0444);
static bool churn;
module_param(churn, bool, 0444);

static struct task_struct *churner;

static struct shared_info *shinfo(void)
{
	return (struct shared_info *)fix_to_virt(FIX_PARAVIRT_BOOTMAP);
}

static int churn_fn(void *unused)
{
	struct shared_info *s = shinfo();

	while (!kthread_should_stop()) {
		s->arch.p2m_generation++;
		wmb();
		udelay(50);
		s->arch.p2m_generation++;
		wmb();
		usleep_range(500, 1000);
	}
	return 0;
}

static int __init p2mlow_init(void)
{
	struct shared_info *s;

	if (!xen_pv_domain())
		return -ENODEV;
	s = shinfo();
	pr_info("p2mlow: before: arch.max_pfn=%#lx p2m_cr3=%#lx p2m_vaddr=%#lx p2m_generation=%#lx nr_pages=%#lx\n",
		s->arch.max_pfn, s->arch.p2m_cr3, s->arch.p2m_vaddr, s->arch.p2m_generation,
		xen_start_info->nr_pages);
	if (lower) {
		s->arch.max_pfn = xen_start_info->nr_pages;
		pr_info("p2mlow: arch.max_pfn lowered to nr_pages %#lx\n", s->arch.max_pfn);
	}
	if (churn) {
		churner = kthread_run(churn_fn, NULL, "p2mlow-churn");
		if (IS_ERR(churner)) {
			int err = PTR_ERR(churner);

			churner = NULL;
			return err;
		}
	}
	return 0;
}

static void __exit p2mlow_exit(void)
{
	struct shared_info *s = shinfo();

	if (churner)
		kthread_stop(churner);
	/* leave an even generation behind: no update is in progress */
	if (s->arch.p2m_generation & 1)
		s->arch.p2m_generation++;
	pr_info("p2mlow: unloaded, p2m_generation=%#lx\n", s->arch.p2m_generation);
}

module_init(p2mlow_init);
module_exit(p2mlow_exit);
