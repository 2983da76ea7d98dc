//! A small harness that drives one order through the core as the runtime
//! would: execute, apply, keep the changes, and check after every step.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};

use orderd_core::command::{Contact, ContactInput, CreateOrder, JobUpdate, WorkOrderSpec};
use orderd_core::model::{Client, ExecutionFlow, JobStatus, OrderSummary};
use orderd_core::{
    apply_change, execute, Change, Command, CommandId, Ctx, Envelope, Order, OrderId, Outcome,
    TenantConfig, TenantId, Timestamp, WorkOrderId,
};
use uuid::Uuid;

pub const TENANT: &str = "acme";

/// A create command for the given flow and work-order types.
pub fn create(flow: ExecutionFlow, kinds: &[&str]) -> CreateOrder {
    CreateOrder {
        client: Client {
            id: "client-1".into(),
            name: "Acme Retail".into(),
        },
        client_order_id: "PO-1".into(),
        ready_to_process: true,
        contact: Some(ContactInput::Details(Contact {
            name: "Ada Marker".into(),
            phone: "+44 20 7946 0000".into(),
        })),
        location: None,
        return_location: None,
        execution_flow: flow,
        summary: OrderSummary {
            invoice_number: Some("INV-001".into()),
            order_description: Some("Two boxes, fragile".into()),
            total_weight: Some(3.5),
            total_items: Some(2),
            total_order_cost: None,
        },
        work_orders: kinds
            .iter()
            .map(|k| WorkOrderSpec {
                kind: (*k).into(),
                ..Default::default()
            })
            .collect(),
        custom: BTreeMap::new(),
    }
}

/// One order driven through the core, with its history.
#[derive(Clone)]
pub struct Harness {
    pub order: Order,
    pub config: TenantConfig,
    pub changes: Vec<Change>,
    pub now: i64,
    next_id: u64,
}

impl Harness {
    pub fn new(config: TenantConfig) -> Self {
        let id = OrderId(Uuid::from_u128(0x1234));
        Self {
            order: Order::blank(id, TenantId::parse(TENANT).unwrap()),
            config,
            changes: Vec::new(),
            now: 1_700_000_000_000,
            next_id: 0,
        }
    }

    /// A harness with an order created with the default configuration.
    pub fn created(flow: ExecutionFlow, kinds: &[&str]) -> Self {
        Self::created_with(TenantConfig::default(), create(flow, kinds))
    }

    pub fn created_with(config: TenantConfig, c: CreateOrder) -> Self {
        let mut h = Self::new(config);
        h.ok(Command::Create(Box::new(c)));
        h
    }

    pub fn envelope(&mut self, command: Command) -> Envelope {
        self.next_id += 1;
        Envelope {
            tenant: self.order.tenant.clone(),
            order_id: self.order.id,
            command_id: CommandId::parse(&format!("cmd-{}", self.next_id)).unwrap(),
            by: "tester".into(),
            command,
            expected_seq: None,
        }
    }

    /// Executes with a given envelope; applies and records an accepted change.
    pub fn run_envelope(&mut self, env: &Envelope) -> Outcome {
        self.now += 1_000;
        let n = self.next_id as u128;
        let ctx = Ctx {
            now: Timestamp(self.now),
            config: &self.config,
            fresh_ids: [
                Uuid::from_u128(n << 8 | 1),
                Uuid::from_u128(n << 8 | 2),
                Uuid::from_u128(n << 8 | 3),
            ],
        };
        let before = self.order.clone();
        let outcome = execute(&self.order, env, &ctx);
        match &outcome {
            Outcome::Applied(change) => {
                assert_eq!(change.seq, before.seq + 1, "seq grows by one per change");
                assert!(!change.events.is_empty(), "an accepted change has events");
                apply_change(&mut self.order, change);
                self.changes.push(change.clone());
            }
            Outcome::Duplicate | Outcome::Refused(_) => {
                assert_eq!(
                    self.order, before,
                    "a refused or repeated command changes nothing"
                );
            }
        }
        outcome
    }

    pub fn run(&mut self, command: Command) -> Outcome {
        let env = self.envelope(command);
        self.run_envelope(&env)
    }

    /// Runs a command that must be accepted; returns its change.
    #[track_caller]
    pub fn ok(&mut self, command: Command) -> Change {
        match self.run(command) {
            Outcome::Applied(c) => c,
            other => panic!("expected the command to be accepted, got {other:?}"),
        }
    }

    /// Runs a command that must be refused; returns the code.
    #[track_caller]
    pub fn refused(&mut self, command: Command) -> &'static str {
        match self.run(command) {
            Outcome::Refused(r) => r.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    pub fn job(&mut self, wo: u32, attempt: u32, status: JobStatus) -> Outcome {
        self.run(Command::Job(JobUpdate {
            work_order: WorkOrderId(wo),
            attempt,
            status,
            job_id: Some(format!("job-{wo}-{attempt}")),
            reason_code: (status == JobStatus::Failed || status == JobStatus::CancelFailed)
                .then(|| "E_TEST".to_owned()),
        }))
    }

    #[track_caller]
    pub fn job_ok(&mut self, wo: u32, attempt: u32, status: JobStatus) -> Change {
        match self.job(wo, attempt, status) {
            Outcome::Applied(c) => c,
            other => panic!("expected the job update to be accepted, got {other:?}"),
        }
    }

    /// Completes a work order's current job: started, then completed.
    pub fn complete(&mut self, wo: u32) {
        let attempt = self.wo(wo).attempt;
        self.job_ok(wo, attempt, JobStatus::Started);
        self.job_ok(wo, attempt, JobStatus::Completed);
    }

    pub fn wo(&self, id: u32) -> &orderd_core::WorkOrder {
        self.order
            .work_order(WorkOrderId(id))
            .expect("work order exists")
    }

    /// Every (work order, attempt, action) sent to dispatch so far.
    pub fn job_commands(&self) -> Vec<(u32, u32, &'static str)> {
        self.changes
            .iter()
            .flat_map(|c| c.job_commands())
            .map(|j| (j.work_order.0, j.attempt, j.action.as_str()))
            .collect()
    }

    /// Rebuilds the order from the recorded changes.
    pub fn rebuilt(&self) -> Order {
        let mut o = Order::blank(self.order.id, self.order.tenant.clone());
        for c in &self.changes {
            apply_change(&mut o, c);
        }
        o
    }

    /// No job was sent twice for one work-order attempt.
    pub fn assert_no_double_dispatch(&self) {
        let mut seen = HashSet::new();
        for (wo, attempt, action) in self.job_commands() {
            if action == "create" {
                assert!(
                    seen.insert((wo, attempt)),
                    "job for work order {wo} attempt {attempt} sent twice"
                );
            }
        }
    }
}
