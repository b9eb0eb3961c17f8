package pack

import "fmt"

// validate checks the cross-references between endpoints, targets, flows and
// rules, reporting each inconsistency at the line that makes it.
func (l *loader) validate(p *Package, file string) {
	endpoints := map[string]*Endpoint{}
	for i := range p.Endpoints {
		e := &p.Endpoints[i]
		if _, dup := endpoints[e.Name]; dup {
			l.c.errorf(file, e.Line, fmt.Sprintf("endpoints[%d].name", i), "duplicate endpoint %q", e.Name)
		}
		endpoints[e.Name] = e
		for j, ev := range e.Events {
			if _, ok := p.byType[ev]; !ok {
				l.c.errorf(file, lineOf(e.Lines, fmt.Sprintf("events[%d]", j), e.Line), fmt.Sprintf("endpoints[%d].events[%d]", i, j), "event %q has no rule in %v", ev, p.RuleFiles)
			}
		}
		for tw := range e.Responses {
			if _, ok := p.byTwilio[tw]; !ok {
				l.c.errorf(file, e.Line, fmt.Sprintf("endpoints[%d].responses.%s", i, tw), "no rule for Twilio event %q", tw)
			}
		}
	}
	targets := map[string]*Target{}
	for i := range p.Targets {
		t := &p.Targets[i]
		if _, dup := targets[t.Name]; dup {
			l.c.errorf(file, t.Line, fmt.Sprintf("targets[%d].name", i), "duplicate target %q", t.Name)
		}
		targets[t.Name] = t
		for j, ev := range t.Events {
			if _, ok := p.byType[ev]; !ok {
				l.c.errorf(file, lineOf(t.Lines, fmt.Sprintf("events[%d]", j), t.Line), fmt.Sprintf("targets[%d].events[%d]", i, j), "event %q has no rule in %v", ev, p.RuleFiles)
			}
		}
	}
	for i, f := range p.Flows {
		path := fmt.Sprintf("flows[%d]", i)
		if _, ok := endpoints[f.Endpoint]; !ok {
			l.c.errorf(file, lineOf(f.Lines, "endpoint", f.Line), path+".endpoint", "unknown endpoint %q", f.Endpoint)
		}
		t, ok := targets[f.Target]
		if !ok {
			l.c.errorf(file, lineOf(f.Lines, "target", f.Line), path+".target", "unknown target %q", f.Target)
		}
		for j, ev := range f.Events {
			ep := fmt.Sprintf("%s.events[%d]", path, j)
			line := lineOf(f.Lines, fmt.Sprintf("events[%d]", j), f.Line)
			if _, ok := p.byType[ev]; !ok {
				l.c.errorf(file, line, ep, "event %q has no rule in %v", ev, p.RuleFiles)
			}
			if e, ok := endpoints[f.Endpoint]; ok && !setOf(e.Events)[ev] {
				l.c.warnf(file, line, ep, "flow %q routes %q, which endpoint %q does not receive", f.Name, ev, f.Endpoint)
			}
			if t != nil && !setOf(t.Events)[ev] {
				l.c.warnf(file, line, ep, "flow %q routes %q to target %q, which does not accept it: those events are never delivered", f.Name, ev, f.Target)
			}
		}
		l.validateFilter(p, file, f, path)
	}
	for i := range p.Rules {
		rule := &p.Rules[i]
		if p.DestinationFor(rule.EventType) == "" && len(p.Flows) > 0 {
			l.c.warnf(rule.File, rule.Line, "event_type", "no flow delivers %q to a target that accepts it", rule.EventType)
		}
	}
}

// validateFilter reports payload conditions on fields that no rule of the
// flow's events produces: such a condition never holds (a typo).
func (l *loader) validateFilter(p *Package, file string, f Flow, path string) {
	if !f.Filter.UsesPayload() {
		return
	}
	fields := map[string]bool{}
	for _, ev := range f.Events {
		for _, rule := range p.byType[ev] {
			for _, fd := range rule.Payload {
				fields[fd.Name] = true
			}
		}
	}
	for _, c := range f.Filter.Payload {
		if !fields[c.Field] {
			l.c.errorf(file, c.Line, path+".filter.payload."+c.Field, "no rule of %v produces payload field %q", f.Events, c.Field)
		}
	}
}
