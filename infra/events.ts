import { TimeZone } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import {
  eventPattern,
  type ResourceNames,
  scheduleTargetParameters,
  topology,
} from '../contract/topology.ts';
import type { FleetQueues } from './queues.ts';

/**
 * The fleet's event bus, one rule per topology rule targeting its queue, and the
 * schedules. Patterns and schedule targets come from the same functions the local
 * bootstrap calls.
 */
export class FleetEvents extends Construct {
  readonly bus: events.EventBus;

  constructor(scope: Construct, id: string, names: ResourceNames, queues: FleetQueues) {
    super(scope, id);
    this.bus = new events.EventBus(this, 'Bus', { eventBusName: names.bus });

    for (const rule of topology.rules) {
      const pattern = eventPattern(rule);
      new events.Rule(this, rule.name, {
        ruleName: names.rule(rule),
        description: rule.description,
        eventBus: this.bus,
        eventPattern: { source: pattern.source, detailType: pattern['detail-type'] },
        // The queue policy this adds allows events.amazonaws.com to send only for this rule's ARN.
        targets: [new targets.SqsQueue(queues.byName[rule.target].queue)],
      });
    }

    for (const schedule of topology.schedules) {
      const parameters = scheduleTargetParameters(schedule);
      new scheduler.Schedule(this, schedule.name, {
        scheduleName: names.schedule(schedule),
        description: schedule.description,
        schedule: scheduler.ScheduleExpression.expression(
          schedule.expression,
          TimeZone.of(schedule.timezone),
        ),
        timeWindow: scheduler.TimeWindow.off(),
        // The target's role (made by the construct) may put events on this bus and nothing else.
        target: new schedulerTargets.EventBridgePutEvents({
          eventBus: this.bus,
          source: parameters.EventBridgeParameters.Source,
          detailType: parameters.EventBridgeParameters.DetailType,
          detail: scheduler.ScheduleTargetInput.fromText(parameters.Input),
        }),
      });
    }
  }
}
